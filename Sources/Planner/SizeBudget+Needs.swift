import MLA
import TensorCore

/// What each kind of job needs, in bytes per rank and on rank 0, from its sizes alone: checked
/// arithmetic only, nothing allocated. The counts follow what the code allocates: the layer's
/// workspace per token, the latent cache, the probes' buffers, the unsharded check on rank 0.
extension SizeBudget {
    /// Bytes of one rank's weights at `tp` (its shards and the replicated weights), f32.
    public static func weightBytes(config: MLAConfig, tp: Int, gate: GateLayout = .column) throws(CountOverflow) -> Int {
        try Checked.sum(of: ShardingPlan(config: config, tp: tp, gate: gate).weights.map(\.bytesPerRank), what: "weight bytes per rank")
    }

    /// Bytes of one rank's forward workspace for `tokens` tokens: input and output, every stage's
    /// activations (the replicated gate as the worst case), a block of attention scores per key,
    /// the RoPE tables and the positions, in f32; a bf16 layer holds the expanded keys and values
    /// (the largest) in 2 bytes, beside one f32 block of `MLAAttention.expandBlockRows` rows.
    public static func activationBytes(tokens T: Int, config c: MLAConfig, tp: Int, precision: Precision = .f32) throws(CountOverflow) -> Int {
        let hl = c.localHeads(tp: tp), kvWidth = hl * (c.qkNopeHeadDim + c.vHeadDim)
        let floatsPerToken = 2 * c.hiddenSize + (c.qLoraRank ?? 0) + hl * c.qkHeadDim + c.kvLoraRank + c.qkRopeHeadDim
            + hl * c.vHeadDim + c.attnOutWidth + AttentionCounts.queryBlockRows + c.qkRopeHeadDim
        let rest = try Checked.product(T, 4 * floatsPerToken + 8, what: "activation bytes of \(T) tokens")
        let kv = try Checked.product(T, precision.bytesPerElement, kvWidth, what: "expanded key and value bytes of \(T) tokens")
        let block = precision == .bf16 ? try Checked.product(min(T, MLAAttention.expandBlockRows), 4, kvWidth, what: "bytes of one expanded block") : 0
        return try Checked.sum(rest, kv, block, what: "activation bytes of \(T) tokens")
    }

    /// Bytes per token that serving through the latent cache adds: the cache row, the naive
    /// path's expanded keys and values, the absorbed path's stacked queries, the schedule.
    static func servingBytesPerToken(config c: MLAConfig, tp: Int) -> Int {
        let hl = c.localHeads(tp: tp)
        return 4 * (c.kvLoraRank + c.qkRopeHeadDim + hl * (c.qkNopeHeadDim + c.vHeadDim) + AttentionCounts.absorbedGroupRows) + 48
    }

    /// Rank 0's unsharded check of `tokens` tokens: every weight twice (the layer and its load),
    /// the whole layer's workspace and the reference output.
    static func checkBytes(tokens T: Int, config c: MLAConfig) throws(CountOverflow) -> Int {
        try Checked.sum(Checked.product(2, weightBytes(config: c, tp: 1), what: "bytes of the unsharded layer"),
                        activationBytes(tokens: T, config: c, tp: 1), Checked.product(4, T, c.hiddenSize, what: "bytes of the reference output"),
                        what: "bytes of the unsharded check")
    }

    /// `run`: T tokens in B sequences, plain or served through the cache; rank 0 also checks
    /// against the unsharded forward (`check`) and writes the output (`output`).
    public static func forward(tokens T: Int, sequences B: Int, config c: MLAConfig, tp: Int, gate: GateLayout,
                               serving: Bool, check: Bool, output: Bool) throws(CountOverflow) -> Need {
        let what = "bytes of \(T) tokens"
        var perRank = try Checked.sum(weightBytes(config: c, tp: tp, gate: gate), activationBytes(tokens: T, config: c, tp: tp),
                                      Checked.product(16, B, what: "bytes of \(B) sequences"), what: what)
        if serving { perRank = try Checked.sum(perRank, Checked.product(T, servingBytesPerToken(config: c, tp: tp), what: what), what: what) }
        var rankZero = check ? try checkBytes(tokens: T, config: c) : 0
        if output { rankZero = try Checked.sum(rankZero, Checked.product(4, T, c.hiddenSize, what: "bytes of the output"), what: what) }
        return Need(perRank: perRank, rankZero: rankZero)
    }

    /// Buffers of the reference probes: an sgemm `x [m, k] · W [k, n]` with its product, a copy
    /// between two buffers of `copyBytes`, an allreduce of `allReduceBytes` and the 64 MiB eviction.
    public static func probeBytes(m: Int, n: Int, k: Int, copyBytes: Int, allReduceBytes: Int) throws(CountOverflow) -> Int {
        let what = "bytes of the probes"
        return try Checked.sum(Checked.product(4, Checked.sum(Checked.product(m, k, what: what), Checked.product(k, n, what: what),
                                                              Checked.product(2, m, n, what: what), what: what), what: what),
                               Checked.product(2, copyBytes, what: what), allReduceBytes, 64 << 20, what: what)
    }

    /// `bench`: a prefill of T tokens and/or decode steps after B sequences of T cached tokens,
    /// with the probes after each timed forward and `repeats + warmup` samples kept.
    public static func bench(tokens T: Int, batch B: Int, prefill: Bool, decode: Bool, copyBytes: Int, forwards: Int,
                             config c: MLAConfig, tp: Int, gate: GateLayout, check: Bool) throws(CountOverflow) -> Need {
        let what = "bytes of the bench"
        var perRank = try Checked.sum(weightBytes(config: c, tp: tp, gate: gate), Checked.product(forwards, 1024, what: what), what: what)
        if prefill {
            perRank = try Checked.sum(perRank, activationBytes(tokens: T, config: c, tp: tp),
                                      probeBytes(m: T, n: c.attnOutWidth, k: c.hiddenSize, copyBytes: 0,
                                                 allReduceBytes: Checked.product(4, T, c.hiddenSize, what: what)), what: what)
        }
        if decode {
            let cached = try Checked.product(B, T, what: "cached tokens (--batch × --tokens)")
            perRank = try Checked.sum(perRank, activationBytes(tokens: cached, config: c, tp: tp),
                                      Checked.product(cached, servingBytesPerToken(config: c, tp: tp), what: what),
                                      probeBytes(m: 0, n: 0, k: 0, copyBytes: copyBytes, allReduceBytes: Checked.product(4, B, c.hiddenSize, what: what)),
                                      what: what)
        }
        return Need(perRank: perRank, rankZero: check ? try checkBytes(tokens: T, config: c) : 0)
    }

    /// `sweep-step`: a prefill of T tokens or decode steps after `context` cached tokens, `repeats`
    /// timed forwards recorded; the rate probe's buffers when it runs first.
    public static func step(tokens T: Int, context: Int?, repeats: Int, config c: MLAConfig, tp: Int, gate: GateLayout,
                            probe: (m: Int, n: Int, k: Int, allReduceBytes: Int)?) throws(CountOverflow) -> Need {
        let what = "bytes of the sweep step"
        let tokens = context ?? T
        var perRank = try Checked.sum(weightBytes(config: c, tp: tp, gate: gate), activationBytes(tokens: tokens, config: c, tp: tp),
                                      Checked.product(repeats, 1024, what: what), what: what)
        if context != nil { perRank = try Checked.sum(perRank, Checked.product(tokens, servingBytesPerToken(config: c, tp: tp), what: what), what: what) }
        if let p = probe { perRank = try Checked.sum(perRank, probeOnly(m: p.m, n: p.n, k: p.k, allReduceBytes: p.allReduceBytes), what: what) }
        return Need(perRank: perRank)
    }

    /// The rate probe alone (`sweep-step --probe`): its sgemm, a 64 MiB copy, its allreduces.
    public static func probeOnly(m: Int, n: Int, k: Int, allReduceBytes: Int) throws(CountOverflow) -> Int {
        try probeBytes(m: m, n: n, k: k, copyBytes: 64 << 20, allReduceBytes: max(allReduceBytes, 8192))
    }

    /// `linear`: X [T, in], W1's rows [hidden/tp, in], H [T, hidden/tp], W2's columns [out, hidden/tp],
    /// Y [T, out] and b on every rank; rank 0's unsharded check holds W1, W2, H and Y whole.
    public static func linear(tokens T: Int, input: Int, hidden: Int, output: Int, tp: Int) throws(CountOverflow) -> Need {
        let what = "bytes of the linear pair"
        let h = hidden / max(tp, 1)
        func floats(_ terms: [(Int, Int)]) throws(CountOverflow) -> Int {
            var total = output
            for (a, b) in terms { total = try Checked.sum(total, Checked.product(a, b, what: what), what: what) }
            return try Checked.product(4, total, what: what)
        }
        return Need(perRank: try floats([(T, input), (h, input), (T, h), (output, h), (T, output)]),
                    rankZero: try floats([(T, input), (hidden, input), (T, hidden), (output, hidden), (T, output)]))
    }

    /// Bytes of an `init` checkpoint of `layers` layers at `bytesPerElement`: the file (its header
    /// is small beside the data) and the process's memory while building it (every tensor encoded,
    /// plus one layer in f32 and its [out, in] copies).
    public static func checkpoint(config c: MLAConfig, layers: Int, bytesPerElement: Int) throws(CountOverflow) -> (file: Int, memory: Int) {
        let layerFloats = try weightBytes(config: c, tp: 1) / 4
        let file = try Checked.sum(Checked.product(layers, layerFloats, bytesPerElement, what: "bytes of \(layers) layers"), 1 << 20,
                                   what: "bytes of the checkpoint")
        return (file, try Checked.sum(file, Checked.product(3 * 4, layerFloats, what: "bytes of one layer"), what: "bytes of init"))
    }

    /// `plan`'s counts for a prefill batch of `lengths` and a decode step over the same contexts:
    /// every FLOP, element and byte count the report prints, checked.
    public static func planCounts(lengths: [Int], config c: MLAConfig, tp: Int) throws(CountOverflow) {
        let T = try Checked.sum(of: lengths, what: "tokens of the batch")
        for gate in GateLayout.allCases { _ = try FlopModel.prefill(config: c, tp: tp, gate: gate, sequenceLengths: lengths) }
        for path in DecodePath.allCases { _ = try FlopModel.decode(config: c, tp: tp, gate: .column, contexts: lengths, path: path) }
        _ = try Checked.product(2 * max(tp, 1), 4, T, c.hiddenSize, what: "allreduce bytes of \(T) tokens")
        _ = try Checked.product(T, KVCache.bytesPerToken(config: c, dtype: .f32), what: "KV-cache bytes of \(T) tokens")
    }
}
