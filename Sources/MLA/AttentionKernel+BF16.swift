import TensorCore

extension AttentionKernel {
    /// `run` with bf16 operands (`multipliesInBF16`): per head, `[k_nope_h | k_rope]` and `v_h` are
    /// stored as bf16 once (exact: they hold bf16 values), then each block's score and value
    /// GEMMs take them as bf16 weights; q and the probabilities are rounded by the GEMM (exact too).
    func runInBF16(_ o: Operands, scores: UnsafeMutablePointer<Float>) {
        let dq = nope + rope
        let raw = scratch.bytes(2 * o.nk * (dq + vDim))
        let keys = raw.bindMemory(to: BFloat16.self, capacity: o.nk * (dq + vDim))   // [nk, dq]
        let values = keys + o.nk * dq                                                 // [nk, vDim]
        for h in 0..<heads {
            o.kNope.advanced(by: h * o.headStrideK).round(rows: o.nk, width: nope, ld: o.ldk, into: keys, ldd: dq)
            AttentionKernel.Rows.f32(o.kRope).round(rows: o.nk, width: rope, ld: o.ldkr, into: keys + nope, ldd: dq)
            o.v.advanced(by: h * o.headStrideK).round(rows: o.nk, width: vDim, ld: o.ldk, into: values, ldd: vDim)
            var i0 = 0
            while i0 < o.nq {
                let rows = min(AttentionKernel.blockRows, o.nq - i0)
                let first = o.nk - o.nq + i0, keyCount = first + rows
                // S = [q_nope | q_rope] · [k_nope | k_rope]ᵀ   [rows, keys], rounded and scaled by the softmax
                Gemm.run(transB: true, m: rows, n: keyCount, k: dq, alpha: scaling.gemmAlpha,
                         a: .f32(o.q + i0 * o.ldq + h * qStride), lda: o.ldq, b: .bf16(keys), ldb: dq,
                         c: .f32(scores), ldc: keyCount)
                causalSoftmax(scores, rows: rows, first: first, keyCount: keyCount)
                // O = P · v   [rows, vDim] into this head's columns of out.
                Gemm.run(m: rows, n: vDim, k: keyCount, a: .f32(scores), lda: keyCount, b: .bf16(values), ldb: vDim,
                         c: .f32(o.out + i0 * o.ldo + h * vDim), ldc: o.ldo)
                i0 += rows
            }
        }
    }
}
