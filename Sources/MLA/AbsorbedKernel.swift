import TensorCore

/// Attention over the latent cache with kv_b_proj absorbed (DeepSeek-V3's inference code,
/// vLLM's MLA backend). For head h, with `W_UK_h [nope, kv_lora]` and `W_UV_h [v, kv_lora]`
/// the head's rows of kv_b_proj:
///
///     q̃_h = q_nope_h · W_UK_h                                   [nq, kv_lora]
///     S_h = scale · (q̃_h · latentᵀ + q_rope_h · k_ropeᵀ)          [nq, nk]
///     O_h = (softmax(mask(S_h)) · latent) · W_UV_hᵀ               [nq, v]
///
/// which equals the expanded form because `k_nope = latent · W_UKᵀ` and `v = latent · W_UVᵀ`.
/// Nothing per key is expanded, so a decode step reads the cache once instead of writing
/// `nk × H/tp × (nope + v)` expanded keys and values.
struct AbsorbedKernel {
    let heads: Int          // local heads
    let nope: Int
    let rope: Int
    let vDim: Int
    let lora: Int
    let scale: Float

    /// Rows (heads × queries) stacked into one score GEMM. A decode step (nq = 1) stacks up to
    /// this many heads, so the cache is read twice per group instead of three times per head.
    static let groupRows = 128

    /// Heads stacked per group for `nq` queries.
    func groupHeads(nq: Int) -> Int { max(1, min(heads, Self.groupRows / max(nq, 1))) }

    /// Floats of scratch `run` needs: per group `[g·nq, kv_lora+rope]` stacked queries,
    /// `[g·nq, nk]` scores and `[g·nq, kv_lora]` attention over the latent.
    func workspaceCount(nq: Int, nk: Int) -> Int { groupHeads(nq: nq) * nq * (2 * lora + rope + nk) }

    /// GEMM FLOPs of `run`: absorb q, scores (latent and rope parts), P·latent, and W_UV.
    func flops(nq: Int, nk: Int) throws(CountOverflow) -> Int {
        let perHead = try Checked.sum(Gemm.flops(m: nq, n: lora, k: nope), Gemm.flops(m: nq, n: nk, k: lora), Gemm.flops(m: nq, n: nk, k: rope),
                                      Gemm.flops(m: nq, n: lora, k: nk), Gemm.flops(m: nq, n: vDim, k: lora), what: "absorbed attention FLOPs")
        return try Checked.product(heads, perHead, what: "absorbed attention FLOPs")
    }

    /// Query i of `nq` sits at key index `nk − nq + i`. `cache` holds `[nk, lora + rope]` rows;
    /// `kvB` is the rank's `[H/tp·(nope+v), lora]` slice of kv_b_proj.
    ///
    /// Heads are taken in groups of `g = groupHeads(nq:)`: each head's `[q̃_h | q_rope_h]` is
    /// written into row block h of one `[g·nq, kv_lora+rope]` matrix, so that the latent and rope
    /// scores of the whole group are one GEMM against the cache rows as they are stored, and
    /// `P·latent` another; only W_UK and W_UV, which differ per head, stay per head.
    func run(q: UnsafePointer<Float>, ldq: Int, cache: UnsafePointer<Float>, kvB: UnsafePointer<Float>,
             out: UnsafeMutablePointer<Float>, ldo: Int, nq: Int, nk: Int, work: UnsafeMutablePointer<Float>) {
        guard nq > 0 else { return }
        let width = lora + rope, dq = nope + rope, headRows = nope + vDim, g = groupHeads(nq: nq)
        for h0 in stride(from: 0, to: heads, by: g) {
            let gh = min(g, heads - h0), rows = gh * nq
            let qs = work, s = qs + rows * width, ol = s + rows * nk                  // [rows, width], [rows, nk], [rows, lora]
            for j in 0..<gh {
                let qh = q + (h0 + j) * dq, wuk = kvB + (h0 + j) * headRows * lora, qj = qs + j * nq * width
                Gemm.run(m: nq, n: lora, k: nope, a: qh, lda: ldq, b: wuk, ldb: lora, c: qj, ldc: width)   // q̃_h [nq, lora]
                for i in 0..<nq { (qj + i * width + lora).update(from: qh + i * ldq + nope, count: rope) }  // q_rope_h [nq, rope]
            }
            Gemm.run(transB: true, m: rows, n: nk, k: width, alpha: scale, a: qs, lda: width, b: cache, ldb: width, c: s, ldc: nk)
            for r in 0..<rows {
                let row = s + r * nk, visible = nk - nq + r % nq + 1
                Kernels.softmax(row, count: visible)
                for j in visible..<nk { row[j] = 0 }
            }
            Gemm.run(m: rows, n: lora, k: nk, a: s, lda: nk, b: cache, ldb: width, c: ol, ldc: lora)      // [rows, lora]
            for j in 0..<gh {
                let wuv = kvB + (h0 + j) * headRows * lora + nope * lora
                Gemm.run(transB: true, m: nq, n: vDim, k: lora, a: ol + j * nq * lora, lda: lora, b: wuv, ldb: lora,
                         c: out + (h0 + j) * vDim, ldc: ldo)
            }
        }
    }
}
