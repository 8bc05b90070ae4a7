import TensorCore

/// What a bf16 sum-allreduce computes, on every rank alike: each rank's partial rounded to bf16
/// (the tensor a bf16 engine's row-parallel GEMM outputs), then the partials added in rank order,
/// each addition computed in f32 from its two bf16 operands and rounded to bf16 —
///
///     s_0 = bf16(p_0),   s_r = bf16(s_{r−1} + bf16(p_r)),   result = s_{tp−1}
///
/// so a sum over tp ranks rounds tp − 1 times on top of the partials' own rounding, as a chain of
/// bf16 additions (one per hop of a ring or tree) does. The sum is element-wise, so it can be split:
/// Open MPI 4.1 has no bf16 datatype, so `Collectives` moves bf16 bit patterns with a ring's
/// traffic — a reduce-scatter in which rank c receives every rank's piece of chunk c (`Chunks`) and
/// runs this sum over it (`sumChunk`), then an all-gather of the summed chunks. Each element is
/// still summed by one rank, in rank order: the bits are the same on every rank, the same as this
/// sum over whole vectors, and do not depend on which piece arrived first. (NCCL's ring starts each
/// chunk's chain at a different rank, so its bits differ from these, with the same number of roundings.)
public enum BF16Reduction {
    /// The rank-order sum of the partials `parts[0]`, `parts[1]`, … (`out.count` bf16 values each)
    /// into `out` (bf16 values, kept as f32).
    public static func sum(_ parts: [UnsafePointer<BFloat16>], into out: UnsafeMutableBufferPointer<Float>) {
        BF16.chainSum(parts, into: out)
    }

    /// The same sum of `ranks` partials laid end to end, rank-major, in `parts`.
    public static func sum(_ parts: UnsafeBufferPointer<BFloat16>, ranks: Int, into out: UnsafeMutableBufferPointer<Float>) {
        let n = out.count
        precondition(parts.count == n * ranks && ranks >= 1, "BF16Reduction.sum: \(parts.count) values are not \(ranks) partials of \(n)")
        guard n > 0, let p = parts.baseAddress else { return }
        sum((0..<ranks).map { p + $0 * n }, into: out)
    }

    /// The same sum over whole partial matrices (in one process): for checks and tests that put
    /// ranks' shards back together the way the collective does.
    public static func sum(_ partials: [Matrix]) -> Matrix {
        guard let first = partials.first else { return Matrix(rows: 0, cols: 0) }
        var parts = [BFloat16](repeating: BFloat16(bitPattern: 0), count: first.count * partials.count)
        parts.withUnsafeMutableBufferPointer { dst in
            for (r, m) in partials.enumerated() {
                precondition(m.shape == first.shape, "BF16Reduction.sum: partial \(r) is \(m.shape), not \(first.shape)")
                m.storage.withUnsafeBufferPointer { BF16.round($0, into: UnsafeMutableBufferPointer(rebasing: dst[r * first.count ..< (r + 1) * first.count])) }
            }
        }
        var out = Matrix(rows: first.rows, cols: first.cols)
        parts.withUnsafeBufferPointer { src in out.storage.withUnsafeMutableBufferPointer { sum(src, ranks: partials.count, into: $0) } }
        return out
    }
}

extension BF16Reduction {
    /// The reduce-scatter's split of `count` values into `ranks` contiguous chunks, chunk c owned
    /// (summed) by rank c: the first `count mod ranks` chunks hold one value more than the others.
    /// With fewer values than ranks the last chunks are empty; an empty chunk's owner still enters
    /// every collective.
    ///
    ///     count 10, ranks 4:   values  0 1 2 | 3 4 5 | 6 7 | 8 9
    ///                          owner   0     | 1     | 2   | 3
    public struct Chunks: Sendable, Equatable {
        public let count: Int
        public let ranks: Int

        public init(count: Int, ranks: Int) {
            precondition(count >= 0 && ranks >= 1, "BF16Reduction.Chunks: \(count) values over \(ranks) ranks")
            self.count = count
            self.ranks = ranks
        }

        /// Chunk c's values, `c·q + min(c, r) ..< (c + 1)·q + min(c + 1, r)` with q = count / ranks, r = count mod ranks.
        public func range(_ c: Int) -> Range<Int> {
            precondition((0..<ranks).contains(c), "BF16Reduction.Chunks: no chunk \(c) of \(ranks)")
            let q = count / ranks, r = count % ranks
            return c * q + min(c, r) ..< (c + 1) * q + min(c + 1, r)
        }

        /// Every chunk, in owner order.
        public var ranges: [Range<Int>] { (0..<ranks).map(range) }

        /// Values rank `r` sends: every other owner its piece of that owner's chunk (the
        /// reduce-scatter, `count − |chunk r|`), then its summed chunk to each of the other ranks (the
        /// all-gather, `(ranks − 1)·|chunk r|`). It receives as many. That is `count + (ranks − 2)·|chunk r|`,
        /// 2(tp − 1)/tp · count when tp divides count (a ring's share), where gathering every partial
        /// would send (tp − 1) · count.
        public func valuesSent(by r: Int) -> Int { count + (ranks - 2) * range(r).count }
    }

    /// Owner `rank`'s step of the reduce-scatter: chunk `rank`'s rank-order sum into `out`, from its
    /// own piece `own` and the other ranks' pieces in `received` (rank-major, `own.count` values per
    /// rank, rank `rank`'s slot unused) — exactly what `sum` gives for these elements of whole partials.
    public static func sumChunk(own: UnsafeBufferPointer<BFloat16>, received: UnsafeBufferPointer<BFloat16>, rank: Int, ranks: Int,
                                into out: UnsafeMutableBufferPointer<Float>) {
        let k = own.count
        precondition(out.count == k && received.count == k * ranks && (0..<ranks).contains(rank),
                     "BF16Reduction.sumChunk: \(received.count) received values are not \(ranks) pieces of \(k) for \(out.count) outputs")
        guard k > 0, let mine = own.baseAddress, let others = received.baseAddress else { return }
        sum((0..<ranks).map { $0 == rank ? mine : others + $0 * k }, into: out)
    }
}
