import TensorCore

/// Causal softmax attention of one sequence for the heads a rank holds, as GEMMs on strided
/// views (no copies of q, k or v):
///
///     S_h = scale · (q_nope_h · k_nope_hᵀ + q_rope_h · k_ropeᵀ)   [nq, nk]   (k_rope shared by heads)
///     O_h = softmax(mask(S_h)) · v_h                               [nq, v]
///
/// Query i sits at key index `nk − nq + i` and sees keys `0 … nk − nq + i`, which covers
/// prefill (nq = nk), chunked prefill over a cache and decode (nq = 1). Queries run in blocks of
/// `blockRows`; a block computes scores only up to its last visible key, skipping the work
/// above the diagonal blockwise.
struct AttentionKernel {
    let heads: Int          // local heads
    let nope: Int
    let rope: Int
    let vDim: Int
    let scale: Float
    static let blockRows = 64

    /// Strided views of one sequence's operands.
    struct Operands {
        var q: UnsafePointer<Float>        // [nq, heads·(nope+rope)], row stride ldq
        var ldq: Int
        var kNope: UnsafePointer<Float>    // head h's k_nope at + h·headStrideK, row stride ldk
        var v: UnsafePointer<Float>        // head h's v at + h·headStrideK, row stride ldk
        var ldk: Int
        var headStrideK: Int
        var kRope: UnsafePointer<Float>    // [nk, rope], row stride ldkr
        var ldkr: Int
        var out: UnsafeMutablePointer<Float>   // [nq, heads·v], row stride ldo
        var ldo: Int
        var nq: Int
        var nk: Int
    }

    /// GEMM FLOPs of `run` for nq queries over nk keys (same blocking), for plan and counters.
    func flops(nq: Int, nk: Int) -> Int {
        var total = 0
        var i0 = 0
        while i0 < nq {
            let rows = min(AttentionKernel.blockRows, nq - i0)
            let keys = nk - nq + i0 + rows
            total += Gemm.flops(m: rows, n: keys, k: nope + rope) + Gemm.flops(m: rows, n: vDim, k: keys)
            i0 += rows
        }
        return heads * total
    }

    /// Runs every local head. `scores` must hold `blockRows × nk` floats.
    func run(_ o: Operands, scores: UnsafeMutablePointer<Float>) {
        guard o.nq > 0 else { return }
        let dq = nope + rope
        for h in 0..<heads {
            var i0 = 0
            while i0 < o.nq {
                let rows = min(AttentionKernel.blockRows, o.nq - i0)
                let first = o.nk - o.nq + i0          // key index of the block's first query
                let keys = first + rows                // keys visible to the block's last query
                let qRow = o.q + i0 * o.ldq + h * dq
                // S = scale · q_nope · k_nopeᵀ, then += scale · q_rope · k_ropeᵀ   [rows, keys]
                Gemm.run(transB: true, m: rows, n: keys, k: nope, alpha: scale, a: qRow, lda: o.ldq,
                         b: o.kNope + h * o.headStrideK, ldb: o.ldk, beta: 0, c: scores, ldc: keys)
                Gemm.run(transB: true, m: rows, n: keys, k: rope, alpha: scale, a: qRow + nope, lda: o.ldq,
                         b: o.kRope, ldb: o.ldkr, beta: 1, c: scores, ldc: keys)
                // Causal mask inside the block, then softmax over the visible keys.
                for r in 0..<rows {
                    let row = scores + r * keys
                    let visible = first + r + 1
                    Kernels.softmax(row, count: visible)
                    for j in visible..<keys { row[j] = 0 }
                }
                // O = P · v   [rows, vDim] into this head's columns of out.
                Gemm.run(m: rows, n: vDim, k: keys, a: scores, lda: keys,
                         b: o.v + h * o.headStrideK, ldb: o.ldk, beta: 0,
                         c: o.out + i0 * o.ldo + h * vDim, ldc: o.ldo)
                i0 += rows
            }
        }
    }
}
