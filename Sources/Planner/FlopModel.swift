import MLA
import TensorCore
import TensorParallel

/// FLOPs and memory traffic of one rank's forward, computed from the config alone (no weights,
/// no MPI). This is the single source `plan` and the projection use, and it must equal what the
/// forward counts while executing (`MLAAttention.counters`): `PlannerTests/PlanTests` runs the real
/// forward and compares the two exactly.
///
/// Counting rules (the forward's own):
/// - a projection `x [m, in] · W_localᵀ` counts `2·m·out_local·in` (`Gemm.flops`);
/// - attention counts the GEMMs of `AttentionKernel.run` per sequence: queries in blocks of
///   `AttentionKernel.blockRows`, a block of `rows` queries scoring the `nk − nq + i0 + rows`
///   keys its last query sees, `2·rows·keys·(nope+rope) + 2·rows·v·keys` per local head;
/// - elementwise work (RMSNorm, RoPE, softmax, the gate activation, biases) counts no FLOPs.
///
/// Traffic is counted in elements (multiply by the element size: 4 for the f32 CPU forward):
/// a GEMM reads both operands and writes its output once, `m·k + k·n + m·n`; attention reads
/// each head's q, k_nope, v, the shared k_rope, and writes the output (the score block stays in
/// cache); absorbed decode reads the latent cache once for all local heads. It is a model of
/// memory traffic for the roofline, not a count the forward makes.
///
/// Every product and sum is checked (`Checked`): a size too large for 64-bit counts throws
/// `CountOverflow` instead of trapping, and `SizeBudget` turns that into a refusal naming the size.
public enum FlopModel {
    public enum Kind: String, Codable, Sendable { case projection, attention }
    /// The kernel an attention stage runs on, whose measured rate the projection takes: the
    /// expanded attention kernel (a prefill's `AttentionKernel`, a naive decode's) or the
    /// absorbed decode (`AbsorbedKernel`, streaming W_UK, W_UV and the latent cache).
    public enum Kernel: String, Codable, Sendable { case expandedAttention = "expanded attention", absorbedDecode = "absorbed decode" }

    /// Query rows per block of the attention kernel (a block scores up to its last query's keys).
    public static var queryBlockRows: Int { AttentionCounts.queryBlockRows }

    /// One GEMM-shaped stage of the forward.
    public struct Stage: Codable, Sendable, Equatable {
        public var name: String
        public var kind: Kind
        public var flops: Int
        /// Elements read and written.
        public var elements: Int
        /// Of `elements`: the weight's (held in the weights' format, fp8 under `--quantization
        /// fp8`) and the latent cache's (held as the cache dtype); the rest are activations.
        public var weightElements: Int? = nil
        public var cacheElements: Int? = nil
        /// The attention kernel the stage runs on; nil for a projection (a GEMM on its weight).
        public var kernel: Kernel? = nil

        /// Adds `g`'s weight, and its `rows × width` input as cached latents (kv_b_proj over the cache).
        mutating func addOperands(of g: Stage, cachedRows rows: Int, width: Int) throws(CountOverflow) {
            let what = "elements of \(name)"
            weightElements = try Checked.sum(weightElements ?? 0, g.weightElements ?? 0, what: what)
            cacheElements = try Checked.sum(cacheElements ?? 0, Checked.product(rows, width, what: what), what: what)
        }
    }

    /// The stages of one forward on one rank. Built only through `init(stages:)`, which checks
    /// that every total fits, so the totals below never overflow.
    public struct Cost: Codable, Sendable, Equatable {
        public private(set) var stages: [Stage]

        init(stages: [Stage]) throws(CountOverflow) {
            self.stages = stages
            _ = try Checked.sum(of: stages.map(\.flops), what: "FLOPs of one forward")
            _ = try Checked.product(4, Checked.sum(of: stages.map(\.elements), what: "elements one forward moves"),
                                    what: "bytes one forward moves")
        }

        public var projectionFlops: Int { stages.filter { $0.kind == .projection }.reduce(0) { $0 + $1.flops } }
        public var attentionFlops: Int { stages.filter { $0.kind == .attention }.reduce(0) { $0 + $1.flops } }
        public var totalFlops: Int { projectionFlops + attentionFlops }
        public var elements: Int { stages.reduce(0) { $0 + $1.elements } }
        /// Stage `name`, if present.
        public func stage(_ name: String) -> Stage? { stages.first { $0.name == name } }

        /// The stages that scale with a rank's heads (everything but the latent down-projections).
        public var perHeadFlops: Int {
            stages.filter { $0.name != "q_a_proj" && $0.name != "kv_a_proj_with_mqa" }.reduce(0) { $0 + $1.flops }
        }
    }

    /// FLOPs the whole job spends on zero heads in one forward costing `cost` per rank, when tp
    /// pads the heads (`--pad-heads`): one head's share of the per-head stages × the padded heads.
    public static func paddingFlops(_ cost: Cost, config c: MLAConfig, tp: Int) -> Int {
        let hl = c.localHeads(tp: tp), extra = c.paddedHeads(tp: tp) - c.numAttentionHeads
        return extra == 0 ? 0 : cost.perHeadFlops / hl * extra
    }

    /// `x [m, inF] · Wᵀ` with a local weight `[out, inF]`.
    public static func gemm(_ name: String, m: Int, out: Int, in inF: Int, kind: Kind = .projection) throws(CountOverflow) -> Stage {
        let what = "elements of \(name) at \(m) tokens"
        let elements = m > 0 ? try Checked.sum(Checked.product(m, inF, what: what), Checked.product(out, inF, what: what),
                                               Checked.product(m, out, what: what), what: what) : 0
        return Stage(name: name, kind: kind, flops: try Gemm.flops(m: m, n: out, k: inF), elements: elements,
                     weightElements: m > 0 ? out * inF : 0)
    }

    /// FLOPs of `AttentionKernel.run` for `heads` local heads, nq queries over nk keys
    /// (the new queries are the last nq of the nk keys): the kernel's own closed form
    /// (`AttentionCounts.expandedFlops`).
    public static func attentionFlops(config c: MLAConfig, heads: Int, nq: Int, nk: Int) throws(CountOverflow) -> Int {
        try AttentionCounts.expandedFlops(heads: heads, dq: c.qkHeadDim, v: c.vHeadDim, nq: nq, nk: nk)
    }

    /// FLOPs of the absorbed kernel for nq queries over nk cached latents: per local head,
    /// absorb `q_nope·W_UK` `[nq, lora]`, scores over the latent and k_rope, `P·latent`, then W_UV.
    public static func absorbedFlops(config c: MLAConfig, heads: Int, nq: Int, nk: Int) throws(CountOverflow) -> Int {
        let lora = c.kvLoraRank, what = "absorbed attention FLOPs for \(nq) queries over \(nk) cached tokens"
        let perHead = try Checked.sum(Checked.product(2, nq, lora, c.qkNopeHeadDim, what: what), Checked.product(2, nq, nk, lora, what: what),
                                      Checked.product(2, nq, nk, c.qkRopeHeadDim, what: what), Checked.product(2, nq, lora, nk, what: what),
                                      Checked.product(2, nq, c.vHeadDim, lora, what: what), what: what)
        return try Checked.product(heads, perHead, what: what)
    }

    /// Elements the expanded attention moves for nq queries over nk keys on `heads` heads.
    static func attentionElements(config c: MLAConfig, heads: Int, nq: Int, nk: Int) throws(CountOverflow) -> Int {
        guard nq > 0 else { return 0 }
        let what = "elements attention moves for \(nq) queries over \(nk) keys"
        let perHead = try Checked.sum(Checked.product(nq, c.qkHeadDim, what: what), Checked.product(nk, c.qkNopeHeadDim + c.vHeadDim, what: what),
                                      Checked.product(nk, c.qkRopeHeadDim, what: what), Checked.product(nq, c.vHeadDim, what: what), what: what)
        return try Checked.product(heads, perHead, what: what)
    }

    /// The projections that run for `tokens` new tokens, in forward order. `expandKV: false`
    /// leaves kv_b_proj out (the decode paths expand the cache, or absorb it, separately). The
    /// latent down-projections as `latent` holds them on the busiest rank (rank 0): 1/tp of their
    /// outputs under `column`; under `sequence`, its run of the tokens in a step that splits them
    /// (not `decodeOnly`, at least tp tokens).
    public static func projections(config c: MLAConfig, tp: Int, gate: GateLayout, tokens T: Int, expandKV: Bool = true,
                                   latent: LatentProjection = .replicated, decodeOnly: Bool = false) throws(CountOverflow) -> [Stage] {
        let H = c.numAttentionHeads, hl = c.localHeads(tp: tp)
        let downRows = latent.splitsTokens(T, ranks: tp, decodeOnly: decodeOnly) ? LatentProjection.tokenCounts(T, ranks: tp)[0] : T
        let downShare = latent == .column ? tp : 1
        var list: [Stage] = []
        if let rq = c.qLoraRank {
            list.append(try gemm("q_a_proj", m: downRows, out: rq / downShare, in: c.hiddenSize))
            list.append(try gemm("q_b_proj", m: T, out: hl * c.qRowsPerHead, in: rq))
        } else {
            list.append(try gemm("q_proj", m: T, out: hl * c.qRowsPerHead, in: c.hiddenSize))
        }
        list.append(try gemm("kv_a_proj_with_mqa", m: downRows, out: (c.kvLoraRank + c.qkRopeHeadDim) / downShare, in: c.hiddenSize))
        if expandKV {
            list.append(try gemm("kv_b_proj", m: T, out: hl * (c.qkNopeHeadDim + c.vHeadDim), in: c.kvLoraRank))
        }
        if c.hasSeparateGate {                                           // a packed gate is part of q's GEMM
            let out = (gate == .column ? hl : H) * c.gateWidthPerHead
            list.append(try gemm("gate", m: T, out: out, in: c.hiddenSize))
        }
        list.append(try gemm("o_proj", m: T, out: c.hiddenSize, in: hl * c.vHeadDim))
        return list
    }

    /// One forward over a batch of fresh sequences (prefill, causal within each sequence). The
    /// invariant mode attends absorbed (no kv_b_proj expansion; each sequence's nq × nk rectangle).
    public static func prefill(config c: MLAConfig, tp: Int, gate: GateLayout, sequenceLengths: [Int],
                               mode: ForwardMode = .default, latent: LatentProjection = .replicated) throws(CountOverflow) -> Cost {
        let T = try Checked.sum(of: sequenceLengths, what: "tokens of the batch"), hl = c.localHeads(tp: tp)
        let invariant = mode == .invariant
        var stages = try projections(config: c, tp: tp, gate: gate, tokens: T, expandKV: !invariant, latent: latent)
        var flops = 0, elements = 0
        for n in sequenceLengths {
            let attention = invariant ? try absorbedFlops(config: c, heads: hl, nq: n, nk: n) : try attentionFlops(config: c, heads: hl, nq: n, nk: n)
            flops = try Checked.sum(flops, attention, what: "attention FLOPs of the batch")
            elements = try Checked.sum(elements, attentionElements(config: c, heads: hl, nq: n, nk: n), what: "elements attention moves")
        }
        stages.insert(Stage(name: "attention", kind: .attention, flops: flops, elements: elements, kernel: .expandedAttention), at: stages.count - (c.hasSeparateGate ? 2 : 1))
        return try Cost(stages: stages)
    }

    /// One decode step (`MLAAttention.decode`): one new token for each sequence, sequence b
    /// attending to `contexts[b]` cached tokens plus itself (nk = context + 1).
    public static func decode(config c: MLAConfig, tp: Int, gate: GateLayout, contexts: [Int], path: DecodePath,
                              latent: LatentProjection = .replicated) throws(CountOverflow) -> Cost {
        let hl = c.localHeads(tp: tp)
        var stages = try projections(config: c, tp: tp, gate: gate, tokens: contexts.count, expandKV: false, latent: latent, decodeOnly: true)
        let at = stages.count - (c.hasSeparateGate ? 2 : 1)
        let cacheRow = c.kvLoraRank + c.qkRopeHeadDim, lora = c.kvLoraRank
        func add(_ s: inout Stage, flops: Int, elements: Int) throws(CountOverflow) {
            s.flops = try Checked.sum(s.flops, flops, what: "FLOPs of \(s.name)")
            s.elements = try Checked.sum(s.elements, elements, what: "elements of \(s.name)")
        }
        switch path {
        case .naive:
            // kv_b_proj over every cached latent of each sequence (counted as a projection),
            // then the expanded kernel for its one query.
            var expand = Stage(name: "kv_b_proj (cache)", kind: .projection, flops: 0, elements: 0)
            var attn = Stage(name: "attention", kind: .attention, flops: 0, elements: 0, kernel: .expandedAttention)
            for context in contexts {
                let nk = try Checked.sum(context, 1, what: "cached tokens")
                let g = try gemm("kv_b_proj (cache)", m: nk, out: hl * (c.qkNopeHeadDim + c.vHeadDim), in: lora)
                try add(&expand, flops: g.flops, elements: g.elements)
                try expand.addOperands(of: g, cachedRows: nk, width: lora)
                try add(&attn, flops: attentionFlops(config: c, heads: hl, nq: 1, nk: nk), elements: attentionElements(config: c, heads: hl, nq: 1, nk: nk))
            }
            stages.insert(contentsOf: [expand, attn], at: at)
        case .absorbed:
            // The cached rows once (every local head reads the same latent and k_rope, so they come
            // from memory once and from cache after), and per head: its W_UK and W_UV rows of
            // kv_b_proj, the query, the absorbed query and latent output, the head's output.
            var attn = Stage(name: "attention (absorbed)", kind: .attention, flops: 0, elements: 0, weightElements: 0, cacheElements: 0,
                             kernel: .absorbedDecode)
            let perHead = (c.qkNopeHeadDim + c.vHeadDim) * lora + c.qkHeadDim + 2 * lora + c.vHeadDim
            for context in contexts {
                let nk = try Checked.sum(context, 1, what: "cached tokens")
                let what = "elements absorbed attention moves over \(nk) cached tokens"
                let cached = try Checked.product(nk, cacheRow, what: what)
                try add(&attn, flops: absorbedFlops(config: c, heads: hl, nq: 1, nk: nk),
                        elements: Checked.sum(cached, Checked.product(hl, perHead, what: what), what: what))
                attn.cacheElements = try Checked.sum(attn.cacheElements ?? 0, cached, what: what)
                attn.weightElements = try Checked.sum(attn.weightElements ?? 0, Checked.product(hl, (c.qkNopeHeadDim + c.vHeadDim) * lora, what: what),
                                                      what: what)
            }
            stages.insert(attn, at: at)
        }
        return try Cost(stages: stages)
    }
}
