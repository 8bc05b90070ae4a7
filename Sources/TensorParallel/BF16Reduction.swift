import TensorCore

/// What a bf16 sum-allreduce computes, on every rank alike: each rank's partial rounded to bf16
/// (the tensor a bf16 engine's row-parallel GEMM outputs), then the partials added in rank order,
/// each addition computed in f32 from its two bf16 operands and rounded to bf16 —
///
///     s_0 = bf16(p_0),   s_r = bf16(s_{r−1} + bf16(p_r)),   result = s_{tp−1}
///
/// so a sum over tp ranks rounds tp − 1 times on top of the partials' own rounding, as a chain of
/// bf16 additions (one per hop of a ring or tree) does. Open MPI 4.1 has no bf16 datatype, so
/// `Collectives` gathers the bf16 partials and every rank runs this same sum: the bits are the same
/// on every rank and do not depend on which partial arrived first. (NCCL's ring starts each chunk's
/// chain at a different rank, so its bits differ from these, with the same number of roundings.)
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
