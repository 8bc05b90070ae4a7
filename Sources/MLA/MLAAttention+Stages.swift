import TensorCore
import TensorParallel

/// The stages of the forward, each on raw views of the workspace.
extension MLAAttention {
    func countProjection(_ tokens: Int, _ layer: some ParallelLayer) throws {
        counters.projectionFlops += try Gemm.flops(m: tokens, n: layer.localOut, k: layer.localIn)
    }

    /// RMSNorm on the latent columns of each `kva` row, in place (k_rope is left alone).
    func normalizeLatent(_ w: inout Workspace, tokens T: Int) {
        let lora = config.kvLoraRank, width = w.kva.cols, eps = config.rmsNormEps, p = precision
        w.kva.storage.withUnsafeMutableBufferPointer { kva in
            kvANorm.withFloats { norm in
                for t in 0..<T { Kernels.rmsNorm(kva.baseAddress! + t * width, count: lora, weight: norm.baseAddress!, eps: eps, storing: p) }
            }
        }
    }

    /// `kv[rows] = latent[rows] · kv_b_projᵀ` → `[n, H/tp·(nope+v)]`, reading the latent columns
    /// of `kva` (`[·, kv_lora+rope]`) as a strided view (no copy), stored in the layer's precision.
    /// `kv` must hold `rows.count` rows.
    func expandLatent(_ kva: Matrix, rows: Range<Int>, into kv: inout Matrix) throws {
        guard !rows.isEmpty else { return }
        let width = kva.cols
        kva.storage.withUnsafeBufferPointer { src in
            kv.storage.withUnsafeMutableBufferPointer { dst in
                expandLatentRows(src.baseAddress! + rows.lowerBound * width, lda: width, count: rows.count, into: dst.baseAddress!, ldc: kv.cols)
            }
        }
        kv.round(to: precision)
        try countProjection(rows.count, kvB)
    }

    /// Rows of the bf16 expansion computed per kv_b_proj product: the f32 result of one block is
    /// all that exists beside the 2-byte `kv16`.
    public static let expandBlockRows = 64

    /// `expandLatent` for a bf16 layer: `kv16 [T, H/tp·(nope+v)]` holds the expanded keys and values
    /// in 2 bytes, computed `expandBlockRows` rows at a time into the f32 `kvBlock` and rounded (the
    /// values the f32 buffer held, rounded to bf16, in half the bytes). Checks each block when
    /// every stage is checked.
    func expandLatentInBF16(_ w: inout Workspace, tokens T: Int) throws {
        let n = kvB.localOut, block = MLAAttention.expandBlockRows
        w.kv16.reshapeDiscarding(rows: T, cols: n)                                        // [T, H/tp·(nope+v)] bf16
        for r0 in stride(from: 0, to: T, by: block) {
            let rows = min(block, T - r0)
            w.kvBlock.reshapeDiscarding(rows: rows, cols: n)                               // [rows, H/tp·(nope+v)] f32
            try expandLatent(w.kva, rows: r0..<(r0 + rows), into: &w.kvBlock)
            try guardStage(.kv, w.kvBlock, firstRow: r0)
            w.kvBlock.storage.withUnsafeBufferPointer { src in
                w.kv16.storage.withUnsafeMutableBufferPointer { dst in
                    BF16.round(rows: rows, width: n, src.baseAddress!, ld: n, into: dst.baseAddress! + r0 * n, ldd: n)
                }
            }
        }
    }

    /// The naive path's keys and values of cached rows: `kv` becomes `[nk, H/tp·(nope+v) + rope]`,
    /// each row the expanded `k_nope_h | v_h` of every local head followed by the token's shared
    /// k_rope, filled a tile of cached rows at a time (the latent of a quantized cache is
    /// dequantized one tile at a time, never as a whole), stored in the layer's precision.
    func expandCached(_ keys: CachedRows, into kv: inout Matrix) throws {
        let lora = config.kvLoraRank, rope = config.qkRopeHeadDim, out = kvB.localOut, ld = out + rope
        kv.reshapeDiscarding(rows: keys.count, cols: ld)                             // [nk, H/tp·(nope+v) + rope]
        guard keys.count > 0 else { return }
        kv.storage.withUnsafeMutableBufferPointer { dst in
            for t in keys.tiles {
                let rows = keys.tile(t), first = dst.baseAddress! + t.lowerBound * ld
                expandLatentRows(rows, lda: keys.width, count: t.count, into: first, ldc: ld)
                for i in 0..<t.count { (first + i * ld + out).update(from: rows + i * keys.width + lora, count: rope) }
            }
        }
        kv.round(to: precision)
        try countProjection(keys.count, kvB)
    }

    /// `count` latent rows at `a` (row stride `lda`) through kv_b_proj into `c` (row stride `ldc`).
    /// The row count changes with every chunk and cache, so f32 stays on OpenBLAS
    /// (`.openBLASForF32`: no oneDNN primitive per shape).
    private func expandLatentRows(_ a: UnsafePointer<Float>, lda: Int, count n: Int, into c: UnsafeMutablePointer<Float>, ldc: Int) {
        let kernel = kvB.weight.withGemmSource { wb in
            Gemm.run(transB: true, m: n, n: kvB.weight.rows, k: config.kvLoraRank, a: .f32(a), lda: lda, b: wb, ldb: config.kvLoraRank,
                     c: .f32(c), ldc: ldc, route: .openBLASForF32)
        }
        counters.record(kernel, for: kvB.name)
    }

    func applyRope(_ w: inout Workspace, positions: [Int]) {
        guard !positions.isEmpty else { return }
        let (cosT, sinT) = rope.tables(positions: positions, storing: precision)
        let half = rope.dim / 2, dq = qStride, nope = config.qkNopeHeadDim
        let qWidth = w.q.cols, kvaWidth = w.kva.cols, lora = config.kvLoraRank, p = precision
        cosT.withUnsafeBufferPointer { cp in
            sinT.withUnsafeBufferPointer { sp in
                w.q.storage.withUnsafeMutableBufferPointer { q in
                    for t in 0..<positions.count {
                        for h in 0..<localHeads {
                            rope.apply(q.baseAddress! + t * qWidth + h * dq + nope, cos: cp.baseAddress! + t * half, sin: sp.baseAddress! + t * half,
                                       storing: p)
                        }
                    }
                }
                w.kva.storage.withUnsafeMutableBufferPointer { kva in
                    for t in 0..<positions.count {
                        rope.apply(kva.baseAddress! + t * kvaWidth + lora, cos: cp.baseAddress! + t * half, sin: sp.baseAddress! + t * half, storing: p)
                    }
                }
            }
        }
    }

    func attend(_ w: inout Workspace, batch: Batch) throws {
        let longest = (0..<batch.sequenceCount).map { batch.tokens(of: $0).count }.max() ?? 0
        let need = AttentionKernel.blockRows * longest
        if w.scores.count < need { w.scores = [Float](repeating: 0, count: need) }
        let c = config, inBF16 = precision == .bf16, kvWidth = inBF16 ? w.kv16.cols : w.kv.cols
        let qWidth = w.q.cols, kvaWidth = w.kva.cols, attnWidth = w.attn.cols
        try w.q.storage.withUnsafeBufferPointer { q in
            try w.kv.storage.withUnsafeBufferPointer { kv32 in
              try w.kv16.storage.withUnsafeBufferPointer { kv16 in
                // Token s's k_nope of head 0; its v is nope further on.
                let keys = { (s: Int) -> AttentionKernel.Rows in
                    inBF16 ? .bf16(kv16.baseAddress! + s * kvWidth) : .f32(kv32.baseAddress! + s * kvWidth)
                }
                try w.kva.storage.withUnsafeBufferPointer { kva in
                    try w.attn.storage.withUnsafeMutableBufferPointer { attn in
                        try w.scores.withUnsafeMutableBufferPointer { scores in
                            for b in 0..<batch.sequenceCount {
                                let seq = batch.tokens(of: b)
                                guard !seq.isEmpty else { continue }
                                let s = seq.lowerBound
                                let ops = AttentionKernel.Operands(
                                    q: q.baseAddress! + s * qWidth, ldq: qWidth,
                                    kNope: keys(s), v: keys(s).advanced(by: c.qkNopeHeadDim),
                                    ldk: kvWidth, headStrideK: c.qkNopeHeadDim + c.vHeadDim,
                                    kRope: kva.baseAddress! + s * kvaWidth + c.kvLoraRank, ldkr: kvaWidth,
                                    out: attn.baseAddress! + s * attnWidth, ldo: attnWidth, nq: seq.count, nk: seq.count)
                                kernel.run(ops, scores: scores.baseAddress!)
                                counters.attentionFlops += try kernel.flops(nq: seq.count, nk: seq.count)
                            }
                        }
                    }
                }
              }
            }
        }
    }

    /// `attn ⊙= act(gate)` for the rank's heads; the replicated layout fails at tp > 1 exactly
    /// where FastDeploy's merged code does, before o_proj's collective. A separate gate is a GEMM
    /// of x; a packed one is already in `q`, after each head's query columns.
    func applyGate(_ gate: Gate, x: Matrix, _ w: inout Workspace) throws {
        let T = x.rows, gw = config.gateWidthPerHead
        var offset = 0, stride = gw                                               // head h's gate at offset + h·stride
        switch gate {
        case let .column(g):
            w.gate.reshapeDiscarding(rows: T, cols: g.localOut)                // [T, H/tp·w]
            counters.record(try g.forward(x, into: &w.gate, kernels: kernels), for: g.name)
            try countProjection(T, g)
        case let .replicated(g):
            w.gate.reshapeDiscarding(rows: T, cols: g.localOut)                // [T, H·w]
            counters.record(try g.forward(x, into: &w.gate, kernels: kernels), for: g.name)
            try countProjection(T, g)
            if gateLayout == .replicated && shard.size > 1 {
                throw GateMismatchError(tokens: T, heads: config.numAttentionHeads, vHeadDim: config.vHeadDim,
                                        tp: shard.size, rank: shard.rank, perHead: gw)
            }
            offset = firstHead * gw                                                // slice to this rank's heads
        case .packed:
            offset = config.qkHeadDim
            stride = qStride
        }
        let source = gate.isPacked ? w.q : w.gate
        try guardStage(.gate, source)
        let ld = source.cols, width = w.attn.cols, activation = gateActivation, heads = localHeads, v = config.vHeadDim, p = precision
        source.storage.withUnsafeBufferPointer { g in
            w.attn.storage.withUnsafeMutableBufferPointer { a in
                MLAAttention.gateMultiply(attn: a.baseAddress!, ldAttn: width, gate: g.baseAddress! + offset, ldGate: ld, rows: T,
                                          heads: heads, v: v, perHead: gw, headStride: stride, activation: activation, storing: p)
            }
        }
    }

    /// The gate pass over strided rows: for each head h, `attn[t, h·v + j] *= act(gate[t, h·stride + j])`
    /// (element-wise, `perHead` = v) or `*= act(gate[t, h·stride])` for all j (head-wise, `perHead` = 1);
    /// the activation and each product stored in `precision`.
    static func gateMultiply(attn: UnsafeMutablePointer<Float>, ldAttn: Int, gate: UnsafePointer<Float>, ldGate: Int, rows: Int, heads: Int,
                             v: Int, perHead: Int, headStride: Int, activation: GateActivation, storing precision: Precision) {
        // An element-wise gate stored contiguously is one pass over the row.
        let (runs, count, step) = perHead == v && headStride == v ? (1, heads * v, 0) : (heads, v, headStride)
        for t in 0..<rows {
            for h in 0..<runs {
                let a = attn + t * ldAttn + h * v, g = gate + t * ldGate + h * step
                if perHead == 1 && v > 1 {
                    Kernels.scale(a, by: activation.apply(g[0], storing: precision), count: count, storing: precision)
                    continue
                }
                switch activation {
                case .sigmoid: Kernels.multiplyBySigmoid(a, gate: g, count: count, storing: precision)
                case .scaledSoftsign: Kernels.multiplyByScaledSoftsign(a, gate: g, count: count, storing: precision)
                case .softplus: Kernels.multiplyBySoftplus(a, gate: g, count: count, storing: precision)
                }
            }
        }
    }
}

extension MLAAttention.Gate {
    var isPacked: Bool { if case .packed = self { return true } else { return false } }
}

extension GateActivation {
    /// The activation of one value.
    public func apply(_ x: Float) -> Float { apply(x, storing: .f32) }

    /// The activation of one value stored in `precision`: in bf16 as torch evaluates it on a bf16
    /// tensor (scaled_softsign's `1 + |x|` rounded before the division, every result rounded).
    public func apply(_ x: Float, storing p: Precision) -> Float {
        switch self {
        case .sigmoid: return p.round(Activation.sigmoid(x))
        case .scaledSoftsign: return p.round(2 * x / p.round(1 + abs(x)))
        case .softplus: return p.round(Activation.softplus(x))
        }
    }
}
