import TensorCore

/// A forward stage whose output the numeric guard can check.
public enum Stage: String, Sendable, CaseIterable {
    case q, kv, scores, gate
    case oProj = "o_proj"
}

/// A NaN or Inf first seen at `stage` on `rank`, at token `token`, column `column`.
public struct NumericError: Error, Equatable, CustomStringConvertible {
    public let stage: Stage
    public let rank: Int
    public let token: Int
    public let column: Int
    public let value: Float

    public var description: String {
        "non-finite value \(value) at stage \(stage.rawValue) on rank \(rank) (token \(token), column \(column)) — "
            + "check the input and the checkpoint's weights for NaN/Inf or overflow (rerun with --check-stages to find the first stage)"
    }
}

extension Matrix {
    /// The first non-finite element as (row, column, value), or nil.
    public func firstNonFinite() -> (row: Int, col: Int, value: Float)? {
        storage.withUnsafeBufferPointer { s in
            for k in s.indices where !s[k].isFinite { return (k / Swift.max(cols, 1), k % Swift.max(cols, 1), s[k]) }
            return nil
        }
    }
}

extension MLAAttention {
    /// Checks a stage when `checkEveryStage` is set; o_proj (the output) is always checked.
    func guardStage(_ stage: Stage, _ m: Matrix) throws {
        guard checkEveryStage || stage == .oProj else { return }
        if let bad = m.firstNonFinite() {
            throw NumericError(stage: stage, rank: shard.rank, token: bad.row, column: bad.col, value: bad.value)
        }
    }
}
