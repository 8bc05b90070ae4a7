import TensorCore
import TensorParallel

/// The stages of the forward, each on raw views of the workspace.
extension MLAAttention {
    func countProjection(_ tokens: Int, _ weight: Matrix) throws {
        counters.projectionFlops += try Gemm.flops(m: tokens, n: weight.rows, k: weight.cols)
    }

    /// RMSNorm on the latent columns of each `kva` row, in place (k_rope is left alone).
    func normalizeLatent(_ w: inout Workspace, tokens T: Int) {
        let lora = config.kvLoraRank, width = w.kva.cols, eps = config.rmsNormEps
        w.kva.storage.withUnsafeMutableBufferPointer { kva in
            kvANorm.withUnsafeBufferPointer { norm in
                for t in 0..<T { Kernels.rmsNorm(kva.baseAddress! + t * width, count: lora, weight: norm.baseAddress!, eps: eps) }
            }
        }
    }

    /// `kv[rows] = latent[rows] · kv_b_projᵀ` → `[n, H/tp·(nope+v)]`, reading the latent columns
    /// of `kva` (`[·, kv_lora+rope]`) as a strided view (no copy). `kv` must hold `rows.count` rows.
    func expandLatent(_ kva: Matrix, rows: Range<Int>, into kv: inout Matrix) throws {
        let lora = config.kvLoraRank, width = kva.cols, n = rows.count, out = kvB.weight.rows
        guard n > 0 else { return }
        kva.storage.withUnsafeBufferPointer { src in
            kvB.weight.storage.withUnsafeBufferPointer { wb in
                kv.storage.withUnsafeMutableBufferPointer { dst in
                    Gemm.run(transB: true, m: n, n: out, k: lora, a: src.baseAddress! + rows.lowerBound * width, lda: width,
                             b: wb.baseAddress!, ldb: lora, c: dst.baseAddress!, ldc: out)
                }
            }
        }
        try countProjection(n, kvB.weight)
    }

    func applyRope(_ w: inout Workspace, positions: [Int]) {
        guard !positions.isEmpty else { return }
        let (cosT, sinT) = rope.tables(positions: positions)
        let half = rope.dim / 2, dq = config.qkHeadDim, nope = config.qkNopeHeadDim
        let qWidth = w.q.cols, kvaWidth = w.kva.cols, lora = config.kvLoraRank
        cosT.withUnsafeBufferPointer { cp in
            sinT.withUnsafeBufferPointer { sp in
                w.q.storage.withUnsafeMutableBufferPointer { q in
                    for t in 0..<positions.count {
                        for h in 0..<localHeads {
                            rope.apply(q.baseAddress! + t * qWidth + h * dq + nope, cos: cp.baseAddress! + t * half, sin: sp.baseAddress! + t * half)
                        }
                    }
                }
                w.kva.storage.withUnsafeMutableBufferPointer { kva in
                    for t in 0..<positions.count {
                        rope.apply(kva.baseAddress! + t * kvaWidth + lora, cos: cp.baseAddress! + t * half, sin: sp.baseAddress! + t * half)
                    }
                }
            }
        }
    }

    func attend(_ w: inout Workspace, batch: Batch) throws {
        let longest = (0..<batch.sequenceCount).map { batch.tokens(of: $0).count }.max() ?? 0
        let need = AttentionKernel.blockRows * longest
        if w.scores.count < need { w.scores = [Float](repeating: 0, count: need) }
        let c = config, kvWidth = w.kv.cols, qWidth = w.q.cols, kvaWidth = w.kva.cols, attnWidth = w.attn.cols
        try w.q.storage.withUnsafeBufferPointer { q in
            try w.kv.storage.withUnsafeBufferPointer { kv in
                try w.kva.storage.withUnsafeBufferPointer { kva in
                    try w.attn.storage.withUnsafeMutableBufferPointer { attn in
                        try w.scores.withUnsafeMutableBufferPointer { scores in
                            for b in 0..<batch.sequenceCount {
                                let seq = batch.tokens(of: b)
                                guard !seq.isEmpty else { continue }
                                let s = seq.lowerBound
                                let ops = AttentionKernel.Operands(
                                    q: q.baseAddress! + s * qWidth, ldq: qWidth,
                                    kNope: kv.baseAddress! + s * kvWidth, v: kv.baseAddress! + s * kvWidth + c.qkNopeHeadDim,
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

    /// `attn ⊙= act(gate(x))` for the rank's heads; the replicated layout fails at tp > 1
    /// exactly where FastDeploy's merged code does, before o_proj's collective.
    func applyGate(_ gate: Gate, x: Matrix, _ w: inout Workspace) throws {
        let T = x.rows
        let width = w.attn.cols
        var offset = 0
        switch gate {
        case let .column(g):
            w.gate.reshapeDiscarding(rows: T, cols: g.localOut)                // [T, H/tp·v]
            try g.forward(x, into: &w.gate)
            try countProjection(T, g.weight)
        case let .replicated(g):
            w.gate.reshapeDiscarding(rows: T, cols: g.localOut)                // [T, H·v]
            try g.forward(x, into: &w.gate)
            try countProjection(T, g.weight)
            if gateLayout == .replicated && shard.size > 1 {
                throw GateMismatchError(tokens: T, heads: config.numAttentionHeads, vHeadDim: config.vHeadDim,
                                        tp: shard.size, rank: shard.rank)
            }
            offset = firstHead * config.vHeadDim                                   // slice to this rank's heads
        }
        try guardStage(.gate, w.gate)
        let gateWidth = w.gate.cols, activation = gateActivation
        w.gate.storage.withUnsafeBufferPointer { g in
            w.attn.storage.withUnsafeMutableBufferPointer { a in
                MLAAttention.gateMultiply(attn: a.baseAddress!, ldAttn: width, gate: g.baseAddress! + offset, ldGate: gateWidth,
                                          rows: T, cols: width, activation: activation)
            }
        }
    }

    /// The fused gate pass: `attn[t, j] *= act(gate[t, j])` over strided rows.
    static func gateMultiply(attn: UnsafeMutablePointer<Float>, ldAttn: Int, gate: UnsafePointer<Float>, ldGate: Int,
                             rows: Int, cols: Int, activation: GateActivation) {
        for t in 0..<rows {
            let a = attn + t * ldAttn, g = gate + t * ldGate
            switch activation {
            case .sigmoid: Kernels.multiplyBySigmoid(a, gate: g, count: cols)
            case .scaledSoftsign: Kernels.multiplyByScaledSoftsign(a, gate: g, count: cols)
            }
        }
    }
}
