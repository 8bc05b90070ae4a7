import TensorCore

/// A batch of sequences laid end to end: `cu_seqlens [B+1]` marks where each sequence's
/// tokens start, and `positions [T]` gives each token's RoPE position.
/// Tokens attend causally within their own sequence only.
public struct Batch: Equatable, Sendable {
    /// Sequence boundaries: sequence b is tokens `cuSeqlens[b] ..< cuSeqlens[b+1]`.
    public let cuSeqlens: [Int]
    /// RoPE position of each token.
    public let positions: [Int]

    public var tokenCount: Int { positions.count }
    public var sequenceCount: Int { cuSeqlens.count - 1 }

    /// Token range of sequence `b`.
    public func tokens(of b: Int) -> Range<Int> { cuSeqlens[b] ..< cuSeqlens[b + 1] }

    /// Sequences of the given lengths, positions 0 ..< len within each. The total is a checked
    /// sum, computed before anything is allocated; `SizeBudget` bounds it by memory first.
    public init(sequenceLengths: [Int]) throws {
        if let bad = sequenceLengths.first(where: { $0 < 0 }) { throw BatchError.negativeLength(bad) }
        let total = try Checked.sum(of: sequenceLengths, what: "tokens of the batch")
        var cu = [0]
        cu.reserveCapacity(sequenceLengths.count + 1)
        var pos: [Int] = []
        pos.reserveCapacity(total)
        for len in sequenceLengths {
            cu.append(cu.last! + len)
            pos.append(contentsOf: 0..<len)
        }
        try self.init(cuSeqlens: cu, positions: pos)
    }

    /// An explicit layout; checked so that every later index is in range.
    public init(cuSeqlens: [Int], positions: [Int]) throws {
        guard cuSeqlens.first == 0, cuSeqlens.count >= 2 || (cuSeqlens == [0] && positions.isEmpty) else {
            throw BatchError.badCuSeqlens("must start with 0 and have at least 2 entries, got \(cuSeqlens.prefix(8))")
        }
        for i in 1..<max(cuSeqlens.count, 1) where cuSeqlens[i] < cuSeqlens[i - 1] {
            throw BatchError.badCuSeqlens("must not decrease: entry \(i) is \(cuSeqlens[i]) after \(cuSeqlens[i - 1])")
        }
        guard cuSeqlens.last == positions.count else {
            throw BatchError.badCuSeqlens("ends at \(cuSeqlens.last ?? 0) but there are \(positions.count) tokens")
        }
        if let bad = positions.firstIndex(where: { $0 < 0 }) {
            throw BatchError.negativePosition(token: bad, value: positions[bad])
        }
        self.cuSeqlens = cuSeqlens.count == 1 ? [0, 0] : cuSeqlens
        self.positions = positions
    }
}

/// A malformed batch layout.
public enum BatchError: Error, Equatable, CustomStringConvertible {
    case negativeLength(Int)
    case badCuSeqlens(String)
    case negativePosition(token: Int, value: Int)

    public var description: String {
        switch self {
        case let .negativeLength(n): return "sequence length \(n) is negative — pass lengths ≥ 0 (e.g. --seqs 7,1,12)"
        case let .badCuSeqlens(d): return "cu_seqlens \(d) — write cumulative sequence starts [0, len0, len0+len1, …, T]"
        case let .negativePosition(t, v): return "positions[\(t)] = \(v) is negative — positions must be ≥ 0"
        }
    }
}
