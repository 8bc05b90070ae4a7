/// Which slice of a tensor-parallel group this process is: rank `rank` of `size` ranks.
public struct Shard: Equatable, Sendable, CustomStringConvertible {
    public let rank: Int
    public let size: Int

    public init(rank: Int, size: Int) {
        precondition(size >= 1 && (0..<size).contains(rank), "shard rank \(rank) of \(size) is not valid")
        self.rank = rank
        self.size = size
    }

    /// The unsharded layout: one rank holding everything.
    public static let whole = Shard(rank: 0, size: 1)

    /// This rank's contiguous part of `width` items: `[r·width/tp, (r+1)·width/tp)`.
    /// Throws when tp does not divide `width`, naming the tensor, the width and tp.
    public func range(of width: Int, for name: String) throws(TPError) -> Range<Int> {
        guard width > 0 else { throw TPError.nonPositive(name: name, width: width) }
        guard width % size == 0 else { throw TPError.indivisible(name: name, width: width, tp: size) }
        let part = width / size
        return rank * part ..< (rank + 1) * part
    }

    public var description: String { "rank \(rank) of tp=\(size)" }
}

/// A tensor-parallel layout that cannot be built.
public enum TPError: Error, Equatable, CustomStringConvertible {
    /// `width` is not a multiple of the tensor-parallel size.
    case indivisible(name: String, width: Int, tp: Int)
    /// A dimension is zero or negative.
    case nonPositive(name: String, width: Int)

    public var description: String {
        switch self {
        case let .indivisible(name, width, tp):
            let divisors = (1...min(width, 64)).filter { width % $0 == 0 }.map(String.init).joined(separator: ", ")
            return "\(name): width \(width) is not divisible by tp=\(tp) — run with a tp that divides \(width) (\(divisors))"
        case let .nonPositive(name, width):
            return "\(name): width \(width) must be positive — fix the model dimensions"
        }
    }
}

/// How a weight is laid out across ranks.
public enum Layout: String, Sendable, Codable {
    /// The full tensor on every rank.
    case replicated
    /// Output rows split across ranks (`W [out, in]` split along `out`).
    case column
    /// Input columns split across ranks (`W [out, in]` split along `in`).
    case row
}
