import TensorCore
import TensorParallel

/// Buffers reused across forwards; each grows to the largest batch seen and is never freed
/// between forwards, so a forward allocates nothing weight-sized.
struct Workspace {
    var qa = Matrix(rows: 0, cols: 0)       // [T, q_lora]
    var q = Matrix(rows: 0, cols: 0)        // [T, H/tp·(nope+rope)], per head [q_h | g_h] with a packed gate
    var kva = Matrix(rows: 0, cols: 0)      // [T, kv_lora+rope]: latent | k_rope
    var xPart = Matrix(rows: 0, cols: 0)    // [T_r, hidden]: this rank's tokens (--latent-proj sequence)
    var qaPart = Matrix(rows: 0, cols: 0)   // [T_r, q_lora] or [T, q_lora/tp]: this rank's part of qa (sharded latent)
    var kvaPart = Matrix(rows: 0, cols: 0)  // [T_r, kv_lora+rope] or [T, (kv_lora+rope)/tp]: its part of kva
    var latentWire: [Float] = []            // [T·(q_lora+kv_lora+rope)]: the latent all-gather's buffer (f32 layers)
    var latentWire16: [BFloat16] = []       // the same in 2 bytes (bf16 layers)
    var kv = Matrix(rows: 0, cols: 0)       // [T, H/tp·(nope+v)]: per head k_nope | v (f32 layers)
    var kv16 = BF16Matrix(rows: 0, cols: 0) // [T, H/tp·(nope+v)]: the same in 2 bytes (bf16 layers)
    var kvBlock = Matrix(rows: 0, cols: 0)  // [≤ expandBlockRows, H/tp·(nope+v)]: one block's f32 product before rounding
    var attn = Matrix(rows: 0, cols: 0)     // [T, H/tp·v]
    var gate = Matrix(rows: 0, cols: 0)     // [T, H/tp·v] (column) or [T, H·v] (replicated)
    var kvCached = Matrix(rows: 0, cols: 0) // [cached+new, H/tp·(nope+v)]: one sequence's expanded cache
    var scores: [Float] = []                // [blockRows, longest sequence], or the absorbed kernel's scratch
    var exchange = ContextExchange()        // decode context parallelism's buffers
    var tree: [Float] = []                  // the invariant reductions' partner copy
    var invariant = InvariantBuffers()      // the invariant attention's scratch
    var blockSums: [Matrix] = []            // [T, hidden] each: the invariant o_proj's subtree sums and next block
}

/// The invariant attention's buffers, reused across steps (each grows to the largest).
struct InvariantBuffers {
    var qs: [Float] = []                    // [g·nq, lora+rope] absorbed queries of a group of heads
    var records: [Float] = []               // [g·nq, lora+2] their merged partials
    var ol: [Float] = []                    // [g·nq, lora] attention over the latent
    var scratch = InvariantAttention.Scratch()
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
        let start = Clock.now()
        try checkInput(x, batch: batch)
        stageHashes?.begin(batch)
        let fixed = mode == .invariant
        try gatedAttention(x, positions: batch.positions, expandKV: !fixed, collectives: collectives, decodeOnly: false) { w in
            if fixed { try self.attendInvariant(&w, batch: batch) } else { try self.attend(&w, batch: batch) }
        }
        try faultHook?()
        try outputProjection(into: &out, tokens: x.rows, collectives: collectives)
        counters.seconds = Clock.now() - start
    }

    /// This rank's o_proj contribution before the allreduce and without the bias:
    /// summing it over ranks and adding `outputBias` once gives the layer's output.
    public func forwardPartial(_ x: Matrix, batch: Batch) throws -> Matrix {
        try checkInput(x, batch: batch)
        precondition(down.scheme == .replicated || shard.size == 1, "forwardPartial has no TP group to gather a sharded latent over")
        try gatedAttention(x, positions: batch.positions, expandKV: true, collectives: .local, decodeOnly: false) { w in
            try self.attend(&w, batch: batch)
        }
        var out = Matrix(rows: x.rows, cols: config.hiddenSize)          // [T, hidden]
        try oProj.partial(workspace.attn, into: &out)
        return out
    }

    /// Frees the buffers the largest forward so far grew (the workspace, the attention kernel's
    /// gathered keys, the shared GEMM scratch), keeping the weights and any cache: what a decode
    /// instance holds after a prompt's prefill (prefill/decode disaggregation, where the decode
    /// ranks never run a prefill). The next forward grows them again to its own size.
    public func releaseBuffers(context: GemmContext = .shared) {
        workspace = Workspace()
        kernel.scratch.release()
        context.releaseScratch()
    }

    /// The last forward's o_proj input on this rank, `attn ⊙ act(gate)` `[T, H/tp·v]` (of the last
    /// step, after a serving pass): what a per-head diagnosis compares.
    public var gatedAttention: Matrix { workspace.attn }

    /// o_proj's bias (added once, after the reduce), if any, as f32 values.
    public var outputBias: [Float]? { oProj.bias?.widened() }

    /// Turns the sum of every rank's `forwardPartial` into the layer's output: o_proj's bias added
    /// once and the result stored in the layer's precision (what `forward` does after its allreduce).
    public func finishOutput(_ sum: inout Matrix) throws {
        try oProj.finish(&sum)
    }

    func checkInput(_ x: Matrix, batch: Batch) throws {
        guard x.cols == config.hiddenSize else {
            throw ShapeError(op: "MLA input", x.shape, Shape(x.rows, config.hiddenSize), hint: "hidden_states must be [T, hidden_size]")
        }
        guard batch.tokenCount == x.rows else {
            throw ShapeError(op: "MLA batch", Shape(x.rows), Shape(batch.tokenCount), hint: "positions/cu_seqlens must cover every token")
        }
    }

    /// Everything before o_proj: the projections and RoPE for the T new tokens, then `attend`
    /// (which fills `attn [T, H/tp·v]`), then the gate. Leaves `attn(x) ⊙ act(gate(x))` in
    /// `workspace.attn`. `expandKV` computes `kv = latent · kv_b_projᵀ` for the new tokens
    /// (the cache paths expand or absorb from the cache instead). `collectives` is the TP group's
    /// (a sharded latent's all-gather); `decodeOnly` says the step is one new token per sequence
    /// after a cached prefix (the sequence form then computes the latent replicated).
    func gatedAttention(_ x: Matrix, positions: [Int], expandKV: Bool, collectives: Collectives, decodeOnly: Bool,
                        attend: (inout Workspace) throws -> Void) throws {
        let c = config
        let T = x.rows
        counters = ForwardCounters()
        let hl = localHeads, dq = qStride
        var w = workspace
        workspace = Workspace()            // hand the buffers over without copying them
        defer { workspace = w }

        // The latent down-projections: qa [T, q_lora] and kva [T, kv_lora+rope], whole on every rank.
        try downProjections(x, &w, collectives: collectives, decodeOnly: decodeOnly)

        // q path: [T, hidden] → [T, H/tp·(nope+rope)]
        try timed(.q) {
            w.q.reshapeDiscarding(rows: T, cols: hl * dq)
            switch qPath {
            case let .lora(norm, qB):
                try w.qa.rmsNormRows(weight: norm, eps: c.rmsNormEps, storing: precision)
                counters.record(try qB.forward(w.qa, into: &w.q, kernels: kernels), for: qB.name)     // [T, H/tp·dq]
                try countProjection(T, qB)
            case let .direct(qProj):
                counters.record(try qProj.forward(x, into: &w.q, kernels: kernels), for: qProj.name)  // [T, H/tp·dq]
                try countProjection(T, qProj)
            }
        }
        try guardStage(.q, w.q)
        stageHashes?.record(.q, w.q, firstHead: firstHead, heads: realHeads.count, width: dq, stride: dq)

        // kv path: latent [T, kv_lora] | k_rope [T, rope] → [T, H/tp·(nope+v)]
        try timed(.kv) {
            normalizeLatent(&w, tokens: T)
            if expandKV && precision == .bf16 {
                try expandLatentInBF16(&w, tokens: T)
            } else if expandKV {
                w.kv.reshapeDiscarding(rows: T, cols: kvB.localOut)
                try expandLatent(w.kva, rows: 0..<T, into: &w.kv)
            }
        }
        if !expandKV || precision != .bf16 { try guardStage(.kv, expandKV ? w.kv : w.kva) }
        stageHashes?.record(.kv, w.kva)                                          // latent | k_rope, before RoPE

        // RoPE on each local head's q_rope and on the shared k_rope, then causal attention → [T, H/tp·v]
        try timed(.attention) {
            applyRope(&w, positions: positions)
            w.attn.reshapeDiscarding(rows: T, cols: hl * c.vHeadDim)
            try attend(&w)
            w.attn.round(to: precision)                                          // the attention output, stored
        }
        try guardStage(.attention, w.attn)
        stageHashes?.record(.attention, w.attn, firstHead: firstHead, heads: realHeads.count, width: c.vHeadDim, stride: c.vHeadDim)

        // The gate: attn ⊙ act(x·gateᵀ + b), on this rank's heads.
        if let gate {
            try timed(.gate) { try applyGate(gate, x: x, &w) }
            stageHashes?.record(.gate, w.attn, firstHead: firstHead, heads: realHeads.count, width: c.vHeadDim, stride: c.vHeadDim)
        }
    }
}
