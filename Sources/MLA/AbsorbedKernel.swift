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
/// `nk × H/tp × (nope + v)` expanded keys and values. Three stages — `absorb`, `attend`,
/// `expand` — so that decode context parallelism can exchange queries and partial results
/// between them (`ContextParallelAttention`).
struct AbsorbedKernel {
    let heads: Int          // local heads
    let nope: Int
    let rope: Int
    let vDim: Int
    let lora: Int
    /// The softmax scale and the precision, shared with the expanded kernel (`AttentionKernel`).
    /// Here the scale always rides in the score GEMM, in bf16 too (a bf16 engine's MLA decode
    /// kernel, FlashMLA, scales in f32).
    let scaling: SoftmaxScaling
    /// Columns of `q` per head: nope + rope, plus a packed gate's columns after them.
    var qStride: Int

    init(heads: Int, nope: Int, rope: Int, vDim: Int, lora: Int, scaling: SoftmaxScaling, qStride: Int? = nil) {
        (self.heads, self.nope, self.rope, self.vDim, self.lora, self.scaling) = (heads, nope, rope, vDim, lora, scaling)
        self.qStride = qStride ?? nope + rope
    }

    var scale: Float { scaling.scale }
    /// What the absorbed queries, the probabilities and `softmax · latent` are stored in. In bf16,
    /// as FlashMLA: q̃ is a bf16 GEMM output, scores, scale and softmax stay f32, the
    /// probabilities are rounded for the product with the latent, whose f32 result is rounded
    /// once (after the log-sum-exp merge, under DCP).
    var precision: Precision { scaling.precision }

    /// Rows (heads × queries) stacked into one score GEMM. A decode step (nq = 1) stacks up to
    /// this many heads, so the cache is read twice per group instead of three times per head.
    static let groupRows = 128

    /// Floats per stacked query row: `[q̃_h | q_rope_h]`.
    var width: Int { lora + rope }

    /// Heads stacked per group for `nq` queries.
    func groupHeads(nq: Int) -> Int { max(1, min(heads, Self.groupRows / max(nq, 1))) }

    /// Floats of scratch `run` needs: per group `[g·nq, kv_lora+rope]` stacked queries,
    /// `[g·nq, nk]` scores and `[g·nq, kv_lora]` attention over the latent.
    func workspaceCount(nq: Int, nk: Int) -> Int { groupHeads(nq: nq) * nq * (2 * lora + rope + nk) }

    /// GEMM FLOPs of `run` (absorb q, scores over the latent and rope parts, P·latent, W_UV), with
    /// the scores and P·latent done for `attendedHeads` heads' queries (more than the rank's own
    /// under decode context parallelism) over `nk` keys.
    func flops(nq: Int, nk: Int, attendedHeads: Int? = nil) throws(CountOverflow) -> Int {
        let own = try Checked.sum(Gemm.flops(m: nq, n: lora, k: nope), Gemm.flops(m: nq, n: vDim, k: lora), what: "absorbed attention FLOPs")
        let attended = try Checked.sum(Gemm.flops(m: nq, n: nk, k: lora), Gemm.flops(m: nq, n: nk, k: rope), Gemm.flops(m: nq, n: lora, k: nk),
                                       what: "absorbed attention FLOPs")
        return try Checked.sum(Checked.product(heads, own, what: "absorbed attention FLOPs"),
                               Checked.product(attendedHeads ?? heads, attended, what: "absorbed attention FLOPs"), what: "absorbed attention FLOPs")
    }

    /// Query i of `nq` sits at key index `nk − nq + i`, nk = `keys.count` cached rows
    /// `[nk, lora + rope]`; `kvB` is the rank's `[H/tp·(nope+v), lora]` slice of kv_b_proj, in its precision. Returns the
    /// kernel that ran W_UK and W_UV.
    ///
    /// Heads are taken in groups of `g = groupHeads(nq:)`: each head's `[q̃_h | q_rope_h]` is
    /// written into row block h of one `[g·nq, kv_lora+rope]` matrix, so that the latent and rope
    /// scores of the whole group are one GEMM per tile of cached rows, and `P·latent` another;
    /// only W_UK and W_UV, which differ per head, stay per head.
    @discardableResult
    func run(q: UnsafePointer<Float>, ldq: Int, keys: CachedRows, kvB: GemmSource,
             out: UnsafeMutablePointer<Float>, ldo: Int, nq: Int, work: UnsafeMutablePointer<Float>) -> GemmKernel {
        guard nq > 0 else { return .empty }
        let nk = keys.count
        let g = groupHeads(nq: nq)
        var kernel = GemmKernel.empty
        for h0 in stride(from: 0, to: heads, by: g) {
            let gh = min(g, heads - h0), rows = gh * nq
            let qs = work, s = qs + rows * width, ol = s + rows * nk                  // [rows, width], [rows, nk], [rows, lora]
            absorb(q: q, ldq: ldq, kvB: kvB, heads: h0 ..< h0 + gh, nq: nq, into: qs)
            attend(qs, rows: rows, keys: keys, visible: { nk - nq + $0 % nq + 1 }, scores: s, into: ol, lse: nil)
            Kernels.round(ol, rows: rows, cols: lora, ld: lora, to: precision)
            kernel = expand(ol, kvB: kvB, heads: h0 ..< h0 + gh, nq: nq, out: out, ldo: ldo)
        }
        return kernel
    }

    /// `[q̃_h | q_rope_h]` for each head of `heads` (the rank's local indices) and `nq` queries, as
    /// row blocks of `dst` `[heads.count · nq, width]` (head-major), q̃ stored in `precision`.
    func absorb(q: UnsafePointer<Float>, ldq: Int, kvB: GemmSource, heads: Range<Int>, nq: Int,
                into dst: UnsafeMutablePointer<Float>) {
        let headRows = nope + vDim
        // q̃_h = q_nope_h · W_UK_h [nq, lora] for every head of the range in one call (W_UK_h: head h's first nope rows of kv_b).
        Gemm.runHeads(heads.count, transB: false, m: nq, n: lora, k: nope, a: q + heads.lowerBound * qStride, lda: ldq, aStride: qStride,
                      b: kvB.advanced(by: heads.lowerBound * headRows * lora), ldb: lora, bStride: headRows * lora,
                      c: dst, ldc: width, cStride: nq * width)
        for j in 0..<heads.count {
            let qh = q + (heads.lowerBound + j) * qStride, qj = dst + j * nq * width
            Kernels.round(qj, rows: nq, cols: lora, ld: width, to: precision)
            for i in 0..<nq { (qj + i * width + lora).update(from: qh + i * ldq + nope, count: rope) }  // q_rope_h [nq, rope]
        }
    }

    /// Softmax attention of `rows` stacked query rows over the `nk = keys.count` cached rows: row r
    /// sees the first `visible(r)` keys (0 allowed: its output is 0 and its log-sum-exp −∞).
    /// Writes `softmax · latent` `[rows, lora]` (as accumulated, f32) into `ol` and, when asked,
    /// each row's log-sum-exp of its scaled scores into `lse`. The probabilities are stored in
    /// `precision` before the product. `scores` holds `rows · nk` floats.
    ///
    /// Two passes over the cached rows, a tile at a time (`CachedRows`: a quantized cache is
    /// dequantized one tile into a small scratch right before each GEMM): the scores of each tile,
    /// then, after the softmax over whole rows, `P · latent` accumulated tile by tile.
    func attend(_ qs: UnsafePointer<Float>, rows: Int, keys: CachedRows, visible: (Int) -> Int,
                scores s: UnsafeMutablePointer<Float>, into ol: UnsafeMutablePointer<Float>, lse: UnsafeMutablePointer<Float>?) {
        guard rows > 0 else { return }
        let nk = keys.count
        guard nk > 0 else {
            ol.update(repeating: 0, count: rows * lora)
            lse?.update(repeating: -.infinity, count: rows)
            return
        }
        let tiles = keys.tiles
        for t in tiles {                                                                          // S[:, t]   [rows, |t|]
            Gemm.run(transB: true, m: rows, n: t.count, k: width, alpha: scale, a: qs, lda: width, b: keys.tile(t), ldb: width,
                     c: s + t.lowerBound, ldc: nk)
        }
        for r in 0..<rows {
            let row = s + r * nk, seen = min(visible(r), nk)
            let l = Kernels.softmax(row, count: seen, storing: precision)
            for j in seen..<nk { row[j] = 0 }
            lse?[r] = l
        }
        for t in tiles {                                                                          // += P[:, t] · latent[t]   [rows, lora]
            Gemm.run(m: rows, n: lora, k: t.count, a: s + t.lowerBound, lda: nk, b: keys.tile(t), ldb: width,
                     beta: t.lowerBound == 0 ? 0 : 1, c: ol, ldc: lora)
        }
    }

    /// `O_h = ol_h · W_UV_hᵀ` `[nq, v]` into head h's columns of `out`, for each head of `heads`
    /// (row blocks of `ol`, head-major as `absorb` wrote them). Returns the kernel that ran.
    @discardableResult
    func expand(_ ol: UnsafePointer<Float>, kvB: GemmSource, heads: Range<Int>, nq: Int,
                out: UnsafeMutablePointer<Float>, ldo: Int) -> GemmKernel {
        let headRows = nope + vDim
        // O_h = ol_h · W_UV_hᵀ for every head of the range in one call (W_UV_h: the v rows after head h's nope rows).
        return Gemm.runHeads(heads.count, transB: true, m: nq, n: vDim, k: lora, a: ol, lda: lora, aStride: nq * lora,
                             b: kvB.advanced(by: heads.lowerBound * headRows * lora + nope * lora), ldb: lora, bStride: headRows * lora,
                             c: out + heads.lowerBound * vDim, ldc: ldo, cStride: vDim)
    }
}
