import SwiftMPI
import TensorCore
import TensorParallel

/// Buffers reused across forwards; each grows to the largest batch seen and is never freed
/// between forwards, so a forward allocates nothing weight-sized.
struct Workspace {
    var qa = Matrix(rows: 0, cols: 0)       // [T, q_lora]
    var q = Matrix(rows: 0, cols: 0)        // [T, H/tp·(nope+rope)]
    var kva = Matrix(rows: 0, cols: 0)      // [T, kv_lora+rope]: latent | k_rope
    var kv = Matrix(rows: 0, cols: 0)       // [T, H/tp·(nope+v)]: per head k_nope | v
    var attn = Matrix(rows: 0, cols: 0)     // [T, H/tp·v]
    var gate = Matrix(rows: 0, cols: 0)     // [T, H/tp·v] (column) or [T, H·v] (replicated)
    var scores: [Float] = []                // [blockRows, longest sequence]
}

extension MLAAttention {
    /// The layer's forward for this rank: `o_proj(attn(x) ⊙ act(gate(x)))`, `[T, hidden]` on every rank.
    public func forward(_ x: Matrix, batch: Batch, collectives: Collectives) throws -> Matrix {
        var out = Matrix(rows: x.rows, cols: config.hiddenSize)
        try forward(x, batch: batch, collectives: collectives, into: &out)
        return out
    }

    /// The forward into a preallocated `out [T, hidden]`.
    public func forward(_ x: Matrix, batch: Batch, collectives: Collectives, into out: inout Matrix) throws {
        let start = Environment.wallTime()
        try gatedAttention(x, batch: batch)
        faultHook?()
        // o_proj, row-parallel: partial [T, hidden] → allreduce → + bias once.
        guard out.rows == x.rows, out.cols == config.hiddenSize else {
            throw ShapeError(op: "MLA output", out.shape, Shape(x.rows, config.hiddenSize))
        }
        try oProj.forward(workspace.attn, into: &out, collectives: collectives)
        countProjection(x.rows, oProj.weight)
        try guardStage(.oProj, out)
        counters.seconds = Environment.wallTime() - start
    }

    /// This rank's o_proj contribution before the allreduce and without the bias:
    /// summing it over ranks and adding `outputBias` once gives the layer's output.
    public func forwardPartial(_ x: Matrix, batch: Batch) throws -> Matrix {
        try gatedAttention(x, batch: batch)
        return try Gemm.linear(workspace.attn, weight: oProj.weight)     // [T, hidden]
    }

    /// o_proj's bias (added once, after the reduce), if any.
    public var outputBias: [Float]? { oProj.bias }

    /// Everything before o_proj: leaves `attn(x) ⊙ act(gate(x))` `[T, H/tp·v]` in `workspace.attn`.
    func gatedAttention(_ x: Matrix, batch: Batch) throws {
        let c = config
        let T = x.rows
        guard x.cols == c.hiddenSize else {
            throw ShapeError(op: "MLA input", x.shape, Shape(T, c.hiddenSize), hint: "hidden_states must be [T, hidden_size]")
        }
        guard batch.tokenCount == T else {
            throw ShapeError(op: "MLA batch", Shape(T), Shape(batch.tokenCount), hint: "positions/cu_seqlens must cover every token")
        }
        counters = ForwardCounters()
        let hl = localHeads, dq = c.qkHeadDim, kvAWidth = c.kvLoraRank + c.qkRopeHeadDim
        var w = workspace
        workspace = Workspace()            // hand the buffers over without copying them
        defer { workspace = w }

        // q path: [T, hidden] → [T, H/tp·(nope+rope)]
        w.q.reshapeDiscarding(rows: T, cols: hl * dq)
        switch qPath {
        case let .lora(qA, norm, qB):
            w.qa.reshapeDiscarding(rows: T, cols: qA.weight.rows)               // [T, q_lora]
            try qA.forward(x, into: &w.qa)
            try w.qa.rmsNormRows(weight: norm, eps: c.rmsNormEps)
            try qB.forward(w.qa, into: &w.q)                                     // [T, H/tp·dq]
            countProjection(T, qA.weight); countProjection(T, qB.weight)
        case let .direct(qProj):
            try qProj.forward(x, into: &w.q)                                     // [T, H/tp·dq]
            countProjection(T, qProj.weight)
        }

        // kv path: [T, hidden] → latent [T, kv_lora] | k_rope [T, rope] → [T, H/tp·(nope+v)]
        w.kva.reshapeDiscarding(rows: T, cols: kvAWidth)
        try kvA.forward(x, into: &w.kva)
        countProjection(T, kvA.weight)
        w.kv.reshapeDiscarding(rows: T, cols: kvB.weight.rows)
        normalizeLatentAndProject(&w, tokens: T)

        // RoPE on each local head's q_rope and on the shared k_rope.
        applyRope(&w, positions: batch.positions)
        try guardStage(.q, w.q)
        try guardStage(.kv, w.kv)

        // Causal attention per sequence → [T, H/tp·v]
        w.attn.reshapeDiscarding(rows: T, cols: hl * c.vHeadDim)
        attend(&w, batch: batch)
        try guardStage(.scores, w.attn)

        // The gate: attn ⊙ act(x·gateᵀ + b), on this rank's heads.
        if let gate { try applyGate(gate, x: x, &w) }
    }

    func countProjection(_ tokens: Int, _ weight: Matrix) {
        counters.projectionFlops += Gemm.flops(m: tokens, n: weight.rows, k: weight.cols)
    }

    /// RMSNorm on the latent columns of kva (in place), then `kv = latent · kv_b_projᵀ`
    /// reading the latent as a strided view (no copy).
    func normalizeLatentAndProject(_ w: inout Workspace, tokens T: Int) {
        let lora = config.kvLoraRank, width = w.kva.cols
        w.kva.storage.withUnsafeMutableBufferPointer { kva in
            kvANorm.withUnsafeBufferPointer { norm in
                for t in 0..<T { Kernels.rmsNorm(kva.baseAddress! + t * width, count: lora, weight: norm.baseAddress!, eps: config.rmsNormEps) }
            }
        }
        guard T > 0 else { return }
        w.kva.storage.withUnsafeBufferPointer { kva in
            kvB.weight.storage.withUnsafeBufferPointer { wb in
                w.kv.storage.withUnsafeMutableBufferPointer { kv in
                    Gemm.run(transB: true, m: T, n: kvB.weight.rows, k: lora, a: kva.baseAddress!, lda: width,
                             b: wb.baseAddress!, ldb: lora, c: kv.baseAddress!, ldc: kvB.weight.rows)
                }
            }
        }
        countProjection(T, kvB.weight)
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

    func attend(_ w: inout Workspace, batch: Batch) {
        let longest = (0..<batch.sequenceCount).map { batch.tokens(of: $0).count }.max() ?? 0
        let need = AttentionKernel.blockRows * longest
        if w.scores.count < need { w.scores = [Float](repeating: 0, count: need) }
        let c = config, kvWidth = w.kv.cols, qWidth = w.q.cols, kvaWidth = w.kva.cols, attnWidth = w.attn.cols
        w.q.storage.withUnsafeBufferPointer { q in
            w.kv.storage.withUnsafeBufferPointer { kv in
                w.kva.storage.withUnsafeBufferPointer { kva in
                    w.attn.storage.withUnsafeMutableBufferPointer { attn in
                        w.scores.withUnsafeMutableBufferPointer { scores in
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
                                counters.attentionFlops += kernel.flops(nq: seq.count, nk: seq.count)
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
            w.gate.reshapeDiscarding(rows: T, cols: g.weight.rows)                // [T, H/tp·v]
            try g.forward(x, into: &w.gate)
            countProjection(T, g.weight)
        case let .replicated(g):
            w.gate.reshapeDiscarding(rows: T, cols: g.weight.rows)                // [T, H·v]
            try g.forward(x, into: &w.gate)
            countProjection(T, g.weight)
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
            case .sigmoid: for j in 0..<cols { a[j] *= Activation.sigmoid(g[j]) }
            case .scaledSoftsign: for j in 0..<cols { a[j] *= Activation.scaledSoftsign(g[j]) }
            }
        }
    }
}
