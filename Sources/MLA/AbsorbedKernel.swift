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

    /// Floats of scratch `run` needs.
    func workspaceCount(nq: Int, nk: Int) -> Int { nq * (2 * lora + nk) }

    /// GEMM FLOPs of `run`: absorb q, scores (latent and rope parts), P·latent, and W_UV.
    func flops(nq: Int, nk: Int) -> Int {
        heads * (Gemm.flops(m: nq, n: lora, k: nope) + Gemm.flops(m: nq, n: nk, k: lora) + Gemm.flops(m: nq, n: nk, k: rope)
                 + Gemm.flops(m: nq, n: lora, k: nk) + Gemm.flops(m: nq, n: vDim, k: lora))
    }

    /// Query i of `nq` sits at key index `nk − nq + i`. `cache` holds `[nk, lora + rope]` rows;
    /// `kvB` is the rank's `[H/tp·(nope+v), lora]` slice of kv_b_proj.
    func run(q: UnsafePointer<Float>, ldq: Int, cache: UnsafePointer<Float>, kvB: UnsafePointer<Float>,
             out: UnsafeMutablePointer<Float>, ldo: Int, nq: Int, nk: Int, work: UnsafeMutablePointer<Float>) {
        guard nq > 0 else { return }
        let width = lora + rope, dq = nope + rope, headRows = nope + vDim
        let qt = work, s = work + nq * lora, ol = s + nq * nk
        for h in 0..<heads {
            let qh = q + h * dq, wuk = kvB + h * headRows * lora, wuv = wuk + nope * lora
            Gemm.run(m: nq, n: lora, k: nope, a: qh, lda: ldq, b: wuk, ldb: lora, c: qt, ldc: lora)
            Gemm.run(transB: true, m: nq, n: nk, k: lora, alpha: scale, a: qt, lda: lora, b: cache, ldb: width, c: s, ldc: nk)
            Gemm.run(transB: true, m: nq, n: nk, k: rope, alpha: scale, a: qh + nope, lda: ldq, b: cache + lora, ldb: width,
                     beta: 1, c: s, ldc: nk)
            for i in 0..<nq {
                let row = s + i * nk, visible = nk - nq + i + 1
                Kernels.softmax(row, count: visible)
                for j in visible..<nk { row[j] = 0 }
            }
            Gemm.run(m: nq, n: lora, k: nk, a: s, lda: nk, b: cache, ldb: width, c: ol, ldc: lora)
            Gemm.run(transB: true, m: nq, n: vDim, k: lora, a: ol, lda: lora, b: wuv, ldb: lora, c: out + h * vDim, ldc: ldo)
        }
    }
}
