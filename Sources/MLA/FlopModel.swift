import TensorCore

/// FLOPs and memory traffic of one rank's forward, computed from the config alone (no weights,
/// no MPI). This is the single source `plan` and the projection use, and it must equal what the
/// forward counts while executing (`MLAAttention.counters`): `MLATests/PlanTests` runs the real
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
public enum FlopModel {
    public enum Kind: String, Codable, Sendable { case projection, attention }

    /// Query rows per block of the attention kernel (a block scores up to its last query's keys).
    public static var queryBlockRows: Int { AttentionKernel.blockRows }

    /// One GEMM-shaped stage of the forward.
    public struct Stage: Codable, Sendable, Equatable {
        public var name: String
        public var kind: Kind
        public var flops: Int
        /// Elements read and written.
        public var elements: Int
    }

    /// The stages of one forward on one rank.
    public struct Cost: Codable, Sendable, Equatable {
        public var stages: [Stage]
        public var projectionFlops: Int { stages.filter { $0.kind == .projection }.reduce(0) { $0 + $1.flops } }
        public var attentionFlops: Int { stages.filter { $0.kind == .attention }.reduce(0) { $0 + $1.flops } }
        public var totalFlops: Int { projectionFlops + attentionFlops }
        public var elements: Int { stages.reduce(0) { $0 + $1.elements } }
        /// Stage `name`, if present.
        public func stage(_ name: String) -> Stage? { stages.first { $0.name == name } }
    }

    /// `x [m, inF] · Wᵀ` with a local weight `[out, inF]`.
    public static func gemm(_ name: String, m: Int, out: Int, in inF: Int, kind: Kind = .projection) -> Stage {
        Stage(name: name, kind: kind, flops: Gemm.flops(m: m, n: out, k: inF),
              elements: m > 0 ? m * inF + out * inF + m * out : 0)
    }

    /// FLOPs of `AttentionKernel.run` for `heads` local heads, nq queries over nk keys
    /// (the new queries are the last nq of the nk keys).
    public static func attentionFlops(config c: MLAConfig, heads: Int, nq: Int, nk: Int) -> Int {
        let dq = c.qkHeadDim, v = c.vHeadDim, block = AttentionKernel.blockRows
        var total = 0
        var i0 = 0
        while i0 < nq {
            let rows = min(block, nq - i0)
            let keys = nk - nq + i0 + rows
            total += 2 * rows * keys * dq + 2 * rows * v * keys
            i0 += rows
        }
        return heads * total
    }

    /// FLOPs of the absorbed kernel for nq queries over nk cached latents: per local head,
    /// absorb `q_nope·W_UK` `[nq, lora]`, scores over the latent and k_rope, `P·latent`, then W_UV.
    public static func absorbedFlops(config c: MLAConfig, heads: Int, nq: Int, nk: Int) -> Int {
        let lora = c.kvLoraRank
        return heads * (2 * nq * lora * c.qkNopeHeadDim + 2 * nq * nk * lora + 2 * nq * nk * c.qkRopeHeadDim
                        + 2 * nq * lora * nk + 2 * nq * c.vHeadDim * lora)
    }

    /// Elements the expanded attention moves for nq queries over nk keys on `heads` heads.
    static func attentionElements(config c: MLAConfig, heads: Int, nq: Int, nk: Int) -> Int {
        guard nq > 0 else { return 0 }
        return heads * (nq * c.qkHeadDim + nk * (c.qkNopeHeadDim + c.vHeadDim) + nk * c.qkRopeHeadDim + nq * c.vHeadDim)
    }

    /// The projections that run for `tokens` new tokens, in forward order. `expandKV: false`
    /// leaves kv_b_proj out (the decode paths expand the cache, or absorb it, separately).
    public static func projections(config c: MLAConfig, tp: Int, gate: GateLayout, tokens T: Int,
                                   expandKV: Bool = true) -> [Stage] {
        let H = c.numAttentionHeads, hl = H / tp
        var list: [Stage] = []
        if let rq = c.qLoraRank {
            list.append(gemm("q_a_proj", m: T, out: rq, in: c.hiddenSize))
            list.append(gemm("q_b_proj", m: T, out: hl * c.qRowsPerHead, in: rq))
        } else {
            list.append(gemm("q_proj", m: T, out: hl * c.qRowsPerHead, in: c.hiddenSize))
        }
        list.append(gemm("kv_a_proj_with_mqa", m: T, out: c.kvLoraRank + c.qkRopeHeadDim, in: c.hiddenSize))
        if expandKV {
            list.append(gemm("kv_b_proj", m: T, out: hl * (c.qkNopeHeadDim + c.vHeadDim), in: c.kvLoraRank))
        }
        if c.hasSeparateGate {                                           // a packed gate is part of q's GEMM
            let out = (gate == .column ? hl : H) * c.gateWidthPerHead
            list.append(gemm("gate", m: T, out: out, in: c.hiddenSize))
        }
        list.append(gemm("o_proj", m: T, out: c.hiddenSize, in: hl * c.vHeadDim))
        return list
    }

    /// One forward over a batch of fresh sequences (prefill, causal within each sequence).
    public static func prefill(config c: MLAConfig, tp: Int, gate: GateLayout, sequenceLengths: [Int]) -> Cost {
        let T = sequenceLengths.reduce(0, +), hl = c.numAttentionHeads / tp
        var stages = projections(config: c, tp: tp, gate: gate, tokens: T)
        let flops = sequenceLengths.reduce(0) { $0 + attentionFlops(config: c, heads: hl, nq: $1, nk: $1) }
        let elements = sequenceLengths.reduce(0) { $0 + attentionElements(config: c, heads: hl, nq: $1, nk: $1) }
        stages.insert(Stage(name: "attention", kind: .attention, flops: flops, elements: elements), at: stages.count - (c.hasSeparateGate ? 2 : 1))
        return Cost(stages: stages)
    }

    /// One decode step (`MLAAttention.decode`): one new token for each sequence, sequence b
    /// attending to `contexts[b]` cached tokens plus itself (nk = context + 1).
    public static func decode(config c: MLAConfig, tp: Int, gate: GateLayout, contexts: [Int], path: DecodePath) -> Cost {
        let hl = c.numAttentionHeads / tp
        var stages = projections(config: c, tp: tp, gate: gate, tokens: contexts.count, expandKV: false)
        let at = stages.count - (c.hasSeparateGate ? 2 : 1)
        let cacheRow = c.kvLoraRank + c.qkRopeHeadDim, lora = c.kvLoraRank
        switch path {
        case .naive:
            // kv_b_proj over every cached latent of each sequence (counted as a projection),
            // then the expanded kernel for its one query.
            var expand = Stage(name: "kv_b_proj (cache)", kind: .projection, flops: 0, elements: 0)
            var attn = Stage(name: "attention", kind: .attention, flops: 0, elements: 0)
            for context in contexts {
                let nk = context + 1
                let g = gemm("kv_b_proj (cache)", m: nk, out: hl * (c.qkNopeHeadDim + c.vHeadDim), in: lora)
                expand.flops += g.flops
                expand.elements += g.elements
                attn.flops += attentionFlops(config: c, heads: hl, nq: 1, nk: nk)
                attn.elements += attentionElements(config: c, heads: hl, nq: 1, nk: nk)
            }
            stages.insert(contentsOf: [expand, attn], at: at)
        case .absorbed:
            // The cached rows once (every local head reads the same latent and k_rope, so they come
            // from memory once and from cache after), and per head: its W_UK and W_UV rows of
            // kv_b_proj, the query, the absorbed query and latent output, the head's output.
            var attn = Stage(name: "attention (absorbed)", kind: .attention, flops: 0, elements: 0)
            for context in contexts {
                let nk = context + 1
                attn.flops += absorbedFlops(config: c, heads: hl, nq: 1, nk: nk)
                attn.elements += nk * cacheRow + hl * ((c.qkNopeHeadDim + c.vHeadDim) * lora + c.qkHeadDim + 2 * lora + c.vHeadDim)
            }
            stages.insert(attn, at: at)
        }
        return Cost(stages: stages)
    }

    /// Bytes of MLA's latent KV cache per token: `(kv_lora + rope) · 4` (f32), the same on every
    /// rank (the latent feeds every head, so each rank holds all of it).
    public static func kvCacheBytesPerToken(config c: MLAConfig, bytesPerElement: Int = 4) -> Int {
        bytesPerElement * (c.kvLoraRank + c.qkRopeHeadDim)
    }
}
