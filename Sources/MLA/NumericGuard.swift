import TensorCore

/// A NaN or Inf first seen at `stage` on `rank`, at token `token`, column `column`.
public struct NumericError: Error, Equatable, CustomStringConvertible {
    public let stage: ForwardStage
    public let rank: Int
    public let token: Int
    public let column: Int
    public let value: Float
    /// Whether every stage was being checked (`--check-stages`): then `stage` is the first bad one.
    public var everyStageChecked = false

    public var description: String {
        "non-finite value \(value) at stage \(stage.rawValue) on rank \(rank) (token \(token), column \(column)) — "
            + "check the input and the checkpoint's weights for NaN/Inf or overflow"
            + (everyStageChecked ? " (every stage was checked: this is the first stage where it appears)" : " (rerun with --check-stages to find the first stage)")
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
    func guardStage(_ stage: ForwardStage, _ m: Matrix, firstRow: Int = 0) throws {
        guard checkEveryStage || stage == .oProj else { return }
        if let bad = m.firstNonFinite() {
            var error = NumericError(stage: stage, rank: shard.rank, token: firstRow + bad.row, column: bad.col, value: bad.value)
            error.everyStageChecked = checkEveryStage
            throw error
        }
    }
}
