/// Decode context parallelism's split of a sequence's cached tokens over the C ranks of a DCP
/// group: the token with cache index i lives on DCP index i mod C, and DCP index k keeps its
/// tokens in order, local slot j holding token k + j·C.
///
///     C = 3, 8 tokens:   cache index  0 1 2 3 4 5 6 7
///                        DCP index    0 1 2 0 1 2 0 1      counts 3 3 2
///                        local slot   0 0 0 1 1 1 2 2
///
/// One type for the runtime (`KVCache` keeps and attends over its share) and for the plan (the
/// cost model counts the keys a rank attends over).
public struct TokenShare: Sendable, Equatable, Hashable, CustomStringConvertible {
    /// This rank's DCP index k (`ParallelLayout.Position.dcpIndex`).
    public let index: Int
    /// Ranks of the DCP group, C.
    public let count: Int

    /// Every token on one rank (no context parallelism).
    public static let whole = TokenShare(index: 0, count: 1)

    public init(index: Int, count: Int) {
        precondition(count >= 1 && (0..<count).contains(index), "token share \(index) of \(count) is not valid")
        self.index = index
        self.count = count
    }

    /// Whether the token with cache index `i` lives here: i mod C = k.
    public func holds(_ i: Int) -> Bool { i % count == index }

    /// Where the token with cache index `i` sits among this rank's rows, or nil when it lives
    /// elsewhere.
    public func localSlot(of i: Int) -> Int? { holds(i) ? i / count : nil }

    /// Tokens this rank keeps of the first `tokens` of a sequence: the cache indices i < tokens
    /// with i mod C = k. A query at cache index p may see the first `localCount(p + 1)` local rows.
    public func localCount(_ tokens: Int) -> Int {
        tokens <= index ? 0 : (tokens - index + count - 1) / count
    }

    /// Tokens each DCP index keeps of `tokens` (they sum to `tokens`; the first `tokens mod C`
    /// indices keep one more).
    public static func counts(_ tokens: Int, over count: Int) -> [Int] {
        (0..<count).map { TokenShare(index: $0, count: count).localCount(tokens) }
    }

    public var description: String { "\(index) of \(count)" }
}

extension ParallelLayout {
    /// The cached tokens `rank` keeps: those on its DCP index (`Position.dcpIndex`) of `dcp`.
    public func tokenShare(of rank: Int) -> TokenShare {
        TokenShare(index: position(of: rank).dcpIndex, count: dcp)
    }
}
