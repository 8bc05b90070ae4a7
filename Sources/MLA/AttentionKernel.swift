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
    /// The softmax scale and how scores and probabilities are stored (f32, or bf16 as HF's bf16
    /// eager attention: scores rounded, scaled, rounded; probabilities rounded).
    let scaling: SoftmaxScaling
    /// Columns of `q` per head: nope + rope, plus a packed gate's columns after them.
    let qStride: Int
    static let blockRows = 64

    /// Expanded keys (nope part) or values: f32, or bf16 (a bf16 prefill's expanded kv, held in
    /// 2 bytes per element).
    enum Rows {
        case f32(UnsafePointer<Float>)
        case bf16(UnsafePointer<BFloat16>)

        /// The rows `offset` elements further on.
        func advanced(by offset: Int) -> Rows {
            switch self { case .f32(let p): .f32(p + offset); case .bf16(let p): .bf16(p + offset) }
        }

        /// `count` rows of `width` values (row stride `ld`) as f32 into `dst` (row stride `ldd`): a copy, or an exact widening.
        func widen(rows count: Int, width: Int, ld: Int, into dst: UnsafeMutablePointer<Float>, ldd: Int) {
            switch self {
            case .f32(let p): for j in 0..<count { (dst + j * ldd).update(from: p + j * ld, count: width) }
            case .bf16(let p): BF16.widen(rows: count, width: width, p, ld: ld, into: dst, ldd: ldd)
            }
        }

        /// `count` rows of `width` values (row stride `ld`) as bf16 into `dst` (row stride `ldd`): exact for bf16 values.
        func round(rows count: Int, width: Int, ld: Int, into dst: UnsafeMutablePointer<BFloat16>, ldd: Int) {
            switch self {
            case .f32(let p): BF16.round(rows: count, width: width, p, ld: ld, into: dst, ldd: ldd)
            case .bf16(let p): for j in 0..<count { (dst + j * ldd).update(from: p + j * ld, count: width) }
            }
        }
    }

    /// Strided views of one sequence's operands.
    struct Operands {
        var q: UnsafePointer<Float>        // [nq, heads·(nope+rope)], row stride ldq
        var ldq: Int
        var kNope: Rows                    // head h's k_nope at + h·headStrideK, row stride ldk
        var v: Rows                        // head h's v at + h·headStrideK, row stride ldk
        var ldk: Int
        var headStrideK: Int
        var kRope: UnsafePointer<Float>    // [nk, rope], row stride ldkr
        var ldkr: Int
        var out: UnsafeMutablePointer<Float>   // [nq, heads·v], row stride ldo
        var ldo: Int
        var nq: Int
        var nk: Int

        init(q: UnsafePointer<Float>, ldq: Int, kNope: Rows, v: Rows, ldk: Int, headStrideK: Int, kRope: UnsafePointer<Float>,
             ldkr: Int, out: UnsafeMutablePointer<Float>, ldo: Int, nq: Int, nk: Int) {
            (self.q, self.ldq, self.kNope, self.v, self.ldk, self.headStrideK) = (q, ldq, kNope, v, ldk, headStrideK)
            (self.kRope, self.ldkr, self.out, self.ldo, self.nq, self.nk) = (kRope, ldkr, out, ldo, nq, nk)
        }

        /// f32 keys and values.
        init(q: UnsafePointer<Float>, ldq: Int, kNope: UnsafePointer<Float>, v: UnsafePointer<Float>, ldk: Int, headStrideK: Int,
             kRope: UnsafePointer<Float>, ldkr: Int, out: UnsafeMutablePointer<Float>, ldo: Int, nq: Int, nk: Int) {
            self.init(q: q, ldq: ldq, kNope: .f32(kNope), v: .f32(v), ldk: ldk, headStrideK: headStrideK, kRope: kRope, ldkr: ldkr,
                      out: out, ldo: ldo, nq: nq, nk: nk)
        }
    }

    /// GEMM FLOPs of `run` for nq queries over nk keys (same blocking), for plan and counters.
    func flops(nq: Int, nk: Int) throws(CountOverflow) -> Int {
        try AttentionCounts.expandedFlops(heads: heads, dq: nope + rope, v: vDim, nq: nq, nk: nk)
    }

    /// Query counts from which `run` gathers each head's keys `[k_nope_h | k_rope]` into one
    /// `[nk, nope+rope]` buffer and scores with one GEMM of depth nope+rope per block, instead of
    /// two (nope, then rope with β = 1). The copy costs `nk·(nope+rope)` floats per head, paid back
    /// over `nq / blockRows` blocks; below this (decode, short chunks) the two-GEMM form runs.
    static let gatherKeysFromQueries = 16

    /// Scratch that outlives a call (TensorCore's `Scratch`): the gathered keys of one head (f32,
    /// or bf16 with that head's values; with bf16 keys and values, their f32 widening), grown to
    /// the longest sequence seen.
    let scratch = Scratch()

    /// Whether `run` multiplies in bf16: scores and probabilities are bf16 values already (HF's
    /// bf16 attention), so where oneDNN's bf16 matmul is native, the head's keys and values are
    /// stored as bf16 once and the two GEMMs of each block run on bf16 operands (f32
    /// accumulation: the same products, summed in another order). Measured here at T = 256:
    /// 175–195 GFLOP/s against OpenBLAS's 80–95 on the f32 copies.
    func multipliesInBF16(nq: Int) -> Bool {
        scaling.precision == .bf16 && nq >= AttentionKernel.gatherKeysFromQueries && OneDNN.bf16Support == .native
    }

    init(heads: Int, nope: Int, rope: Int, vDim: Int, scaling: SoftmaxScaling, qStride: Int? = nil) {
        self.heads = heads
        self.nope = nope
        self.rope = rope
        self.vDim = vDim
        self.scaling = scaling
        self.qStride = qStride ?? nope + rope
    }

    /// Runs every local head. `scores` must hold `blockRows × nk` floats.
    func run(_ o: Operands, scores: UnsafeMutablePointer<Float>) {
        guard o.nq > 0 else { return }
        if multipliesInBF16(nq: o.nq) { runInBF16(o, scores: scores) } else { runInF32(o, scores: scores) }
    }

    /// `run` with every GEMM in f32 (OpenBLAS) on the operands as they are; bf16 keys and values
    /// are widened (exactly) one head at a time into scratch, so the GEMMs see the same f32 values.
    func runInF32(_ o: Operands, scores: UnsafeMutablePointer<Float>) {
        let dq = nope + rope
        let gather = o.nq >= AttentionKernel.gatherKeysFromQueries, alpha = scaling.gemmAlpha
        var widened = false
        if case .bf16 = o.kNope { widened = true }
        // [nk, dq] gathered keys; with bf16 operands also [nk, nope] k_nope (unless gathered) and [nk, v] values.
        let base = gather || widened ? scratch.floats(o.nk * (dq + (widened ? nope + vDim : 0))) : scores
        let keys = base, wideNope = base + o.nk * dq, wideV = wideNope + o.nk * nope
        for h in 0..<heads {
            let kn = o.kNope.advanced(by: h * o.headStrideK)
            var kNope = UnsafePointer(wideNope), ldkNope = nope, vRows = UnsafePointer(wideV), ldv = vDim
            if gather {
                // keys[j] = [k_nope_h[j] | k_rope[j]]   [nk, dq]
                kn.widen(rows: o.nk, width: nope, ld: o.ldk, into: keys, ldd: dq)
                for j in 0..<o.nk { (keys + j * dq + nope).update(from: o.kRope + j * o.ldkr, count: rope) }
            } else if case .f32(let p) = kn {
                (kNope, ldkNope) = (p, o.ldk)
            } else {
                kn.widen(rows: o.nk, width: nope, ld: o.ldk, into: wideNope, ldd: nope)
            }
            switch o.v.advanced(by: h * o.headStrideK) {
            case .f32(let p): (vRows, ldv) = (p, o.ldk)
            case let rows: rows.widen(rows: o.nk, width: vDim, ld: o.ldk, into: wideV, ldd: vDim)
            }
            var i0 = 0
            while i0 < o.nq {
                let rows = min(AttentionKernel.blockRows, o.nq - i0)
                let first = o.nk - o.nq + i0          // key index of the block's first query
                let keyCount = first + rows            // keys visible to the block's last query
                let qRow = o.q + i0 * o.ldq + h * qStride
                if gather {
                    // S = scale · [q_nope | q_rope] · [k_nope | k_rope]ᵀ   [rows, keys], one GEMM of depth dq
                    Gemm.run(transB: true, m: rows, n: keyCount, k: dq, alpha: alpha, a: qRow, lda: o.ldq,
                             b: keys, ldb: dq, beta: 0, c: scores, ldc: keyCount)
                } else {
                    // S = scale · q_nope · k_nopeᵀ, then += scale · q_rope · k_ropeᵀ   [rows, keys]
                    Gemm.run(transB: true, m: rows, n: keyCount, k: nope, alpha: alpha, a: qRow, lda: o.ldq,
                             b: kNope, ldb: ldkNope, beta: 0, c: scores, ldc: keyCount)
                    Gemm.run(transB: true, m: rows, n: keyCount, k: rope, alpha: alpha, a: qRow + nope, lda: o.ldq,
                             b: o.kRope, ldb: o.ldkr, beta: 1, c: scores, ldc: keyCount)
                }
                causalSoftmax(scores, rows: rows, first: first, keyCount: keyCount)
                // O = P · v   [rows, vDim] into this head's columns of out.
                Gemm.run(m: rows, n: vDim, k: keyCount, a: scores, lda: keyCount,
                         b: vRows, ldb: ldv, beta: 0,
                         c: o.out + i0 * o.ldo + h * vDim, ldc: o.ldo)
                i0 += rows
            }
        }
    }

    /// Causal mask inside a block, then softmax over the visible keys: row r of `scores`
    /// (`[rows, keyCount]`) sees keys `0 … first + r`.
    @inline(__always)
    func causalSoftmax(_ scores: UnsafeMutablePointer<Float>, rows: Int, first: Int, keyCount: Int) {
        for r in 0..<rows {
            let row = scores + r * keyCount
            let visible = first + r + 1
            scaling.softmax(row, count: visible)
            if visible < keyCount { (row + visible).update(repeating: 0, count: keyCount - visible) }
        }
    }
}
