import MLA
import TensorCore
import TensorParallel

/// What one rank holds, computes and sends per layer under a `ParallelLayout`, for a batch of
/// `batch` sequences of `context` tokens: the source of `plan --layouts`. Figures are for the
/// busiest rank (group 0, DCP index 0: it gets the most sequences and tokens), per layer, at
/// `bytesPerElement` bytes per weight and activation, the cache held as `cacheDType`
/// (`KVCacheLayout`). Equal to what `run`
/// counts on rank 0 for the same layout and batch (a serving pass: prefill of `context` tokens
/// per sequence, then one decode step).
public struct LayoutPlan: Codable, Sendable {
    public var layout: String
    public var dp: Int
    public var tp: Int
    public var dcp: Int
    /// Bytes per weight and activation (4: f32, 2: bf16), and what the cache holds its tokens in.
    public var bytesPerElement: Int
    public var cacheDType: KVCacheDType
    /// Sequences the busiest group serves: ⌈batch / dp⌉.
    public var sequencesPerGroup: Int
    public var weightBytesPerRank: Int
    /// Cache bytes per token of a sequence the rank serves (a DCP rank keeps 1/C of them).
    public var kvBytesPerToken: Double
    /// The busiest rank's cache after the prefill: its group's sequences, its DCP share.
    public var kvBytesPerRank: Int
    /// Cached tokens per rank that a layer's memory allows, and the context × batch that fits
    /// across the job (nil without `memoryPerRank`), with the cache in `cacheDType`.
    public var maxCachedTokensPerRank: Int?
    public var maxContextTimesBatch: Int?
    /// The same for every cache dtype (nil without `memoryPerRank`).
    public var capacity: [CacheCapacity]?
    public var prefill: FlopModel.Cost
    public var decode: FlopModel.Cost
    /// Bytes the rank contributes to each collective of a prefill and of a decode step.
    public var prefillCollectives: [CollectiveBytes]
    public var decodeCollectives: [CollectiveBytes]
    /// When tp does not divide the heads: the zero heads that pad them and what they waste (nil: none).
    public var padding: Padding?

    public struct Padding: Codable, Sendable, Equatable {
        public var modelHeads: Int
        public var paddedHeads: Int
        /// Zero weights over the TP group, and the FLOPs the group spends on the zero heads.
        public var bytes: Int
        public var prefillFlops: Int
        public var decodeFlops: Int
    }

    /// What a rank's memory holds of the cache when it holds its tokens in `dtype`.
    public struct CacheCapacity: Codable, Sendable, Equatable {
        public var dtype: KVCacheDType
        public var bytesPerToken: Int
        /// Tokens one rank can cache in a layer's memory less its weights.
        public var maxCachedTokensPerRank: Int
        /// Those tokens × dcp × dp: the context × batch the job can serve.
        public var maxContextTimesBatch: Int
    }

    public struct CollectiveBytes: Codable, Sendable, Equatable {
        /// `allreduce` (o_proj, TP group), `all-gather` (DCP queries and log-sum-exps, or the
        /// sharded latent projections' latent), `reduce-scatter` (DCP outputs).
        public var kind: String
        public var ranks: Int
        public var bytes: Int
        /// `latent` for the latent all-gather over the TP group (nil: the others).
        public var purpose: String?

        public init(kind: String, ranks: Int, bytes: Int, purpose: String? = nil) {
            (self.kind, self.ranks, self.bytes, self.purpose) = (kind, ranks, bytes, purpose)
        }
    }

    public init(config c: MLAConfig, layout l: ParallelLayout, gate: GateLayout = .column, context: Int, batch: Int,
                bytesPerElement e: Int = 4, cacheDType: KVCacheDType = .f32, memoryPerRank: Int? = nil,
                quantization: WeightQuantization? = nil) throws(CountOverflow) {
        layout = l.description
        (dp, tp, dcp) = (l.dp, l.tp, l.dcp)
        bytesPerElement = e
        self.cacheDType = cacheDType
        let sequences = (batch + l.dp - 1) / l.dp
        sequencesPerGroup = sequences
        let sharding = ShardingPlan(config: c, tp: l.tp, gate: gate, latent: l.latent)            // f32 bytes
        weightBytesPerRank = quantization == .fp8 ? ShardingPlan(config: c, tp: l.tp, gate: gate, quantization: .fp8, latent: l.latent).bytesPerRank
                                                  : sharding.bytesPerRank / 4 * e
        let perToken = KVCache.bytesPerToken(config: c, dtype: cacheDType)
        kvBytesPerToken = Double(perToken) / Double(l.dcp)
        let share = TokenShare(index: 0, count: l.dcp)
        kvBytesPerRank = try Checked.product(sequences, share.localCount(context), perToken, what: "KV cache bytes per rank")
        if let memoryPerRank {
            let free = max(0, memoryPerRank - weightBytesPerRank)
            capacity = try KVCacheDType.allCases.map { dtype throws(CountOverflow) in
                let bytes = KVCache.bytesPerToken(config: c, dtype: dtype), tokens = free / bytes
                return CacheCapacity(dtype: dtype, bytesPerToken: bytes, maxCachedTokensPerRank: tokens,
                                     maxContextTimesBatch: try Checked.product(tokens, l.dcp, l.dp, what: "context × batch that fits"))
            }
            let mine = capacity?.first { $0.dtype == cacheDType }
            (maxCachedTokensPerRank, maxContextTimesBatch) = (mine?.maxCachedTokensPerRank, mine?.maxContextTimesBatch)
        }
        let prompts = Array(repeating: context, count: sequences)
        // A prefill is the same under every layout's TP group: DCP splits only what is cached before a step.
        prefill = try FlopModel.prefill(config: c, tp: l.tp, gate: gate, sequenceLengths: prompts, latent: l.latent)
        decode = try FlopModel.servingStep(config: c, tp: l.tp, gate: gate, newTokens: Array(repeating: 1, count: sequences),
                                       cached: prompts, path: .absorbed, dcp: share, latent: l.latent)
        func collectives(newTokens n: Int, decodeOnly: Bool) throws(CountOverflow) -> [CollectiveBytes] {
            var list: [CollectiveBytes] = []
            let what = "collective bytes"
            if let g = try FlopModel.latentGatherElements(config: c, tp: l.tp, latent: l.latent, tokens: n, decodeOnly: decodeOnly) {
                list.append(CollectiveBytes(kind: "all-gather", ranks: l.tp, bytes: try Checked.product(g, e, what: what), purpose: "latent"))
            }
            if l.tp > 1 { list.append(CollectiveBytes(kind: "allreduce", ranks: l.tp, bytes: try Checked.product(n, c.hiddenSize, e, what: what))) }
            if l.dcp > 1 {
                let rows = try Checked.product(c.localHeads(tp: l.tp), n, what: what)
                list.append(CollectiveBytes(kind: "all-gather", ranks: l.dcp, bytes: try Checked.sum(
                    Checked.product(rows, c.kvLoraRank + c.qkRopeHeadDim, e, what: what), Checked.product(l.dcp, rows, 4, what: what), what: what)))
                list.append(CollectiveBytes(kind: "reduce-scatter", ranks: l.dcp, bytes: try Checked.product(l.dcp, rows, c.kvLoraRank, e, what: what)))
            }
            return list
        }
        prefillCollectives = try collectives(newTokens: Checked.product(sequences, context, what: "prefill tokens"), decodeOnly: false)
            .filter { $0.kind == "allreduce" || $0.purpose == "latent" }
        decodeCollectives = try collectives(newTokens: sequences,
                                            decodeOnly: LatentProjection.isDecodeOnly(newTokens: Array(repeating: 1, count: sequences), cached: prompts))
        let (prefillCost, decodeCost) = (prefill, decode)
        padding = sharding.paddedHeads.map {
            Padding(modelHeads: c.numAttentionHeads, paddedHeads: $0, bytes: sharding.paddingBytes / 4 * e,
                    prefillFlops: FlopModel.paddingFlops(prefillCost, config: c, tp: l.tp), decodeFlops: FlopModel.paddingFlops(decodeCost, config: c, tp: l.tp))
        }
    }

    /// Seconds of a step with `cost` and `collectives` on `hardware`, at this plan's element
    /// size: the roofline of each stage, a ring allreduce, ring all-gathers (each rank receives
    /// the other p−1 blocks) and ring reduce-scatters ((p−1)/p of the buffer), p−1 latencies each,
    /// at each collective's own link where the hardware has one (`Hardware.allGatherLink`,
    /// `reduceScatterLink`), the allreduce's otherwise.
    /// The layout's dp · tp ranks share the cores (`Hardware.share`).
    public func seconds(_ cost: FlopModel.Cost, _ collectives: [CollectiveBytes], config: MLAConfig,
                        hardware: Hardware) -> (compute: Double, communication: Double) {
        let parts = stageSeconds(cost, collectives, config: config, hardware: hardware)
        let comm = parts.filter { $0.collective }.reduce(0) { $0 + $1.seconds }
        return (parts.reduce(0) { $0 + $1.seconds } - comm, comm)
    }

    /// One projected part of a step: a compute stage (by its FlopModel name) or a collective
    /// (`allreduce`, `latent` for the latent all-gather, `dcp` for DCP's exchanges).
    public struct Part: Sendable, Equatable {
        public var name: String
        public var seconds: Double
        public var collective: Bool
    }

    /// The step's projected time, part by part (`seconds` sums them).
    public func stageSeconds(_ cost: FlopModel.Cost, _ collectives: [CollectiveBytes], config: MLAConfig,
                             hardware: Hardware) -> [Part] {
        var hw = hardware
        hw.bytesPerElement = bytesPerElement
        let stages = Projection(cost: cost, tokens: 0, config: config, tp: dp * tp, hardware: hw).stages
        var parts = stages.map { Part(name: $0.name, seconds: $0.seconds, collective: false) }
        for c in collectives where c.ranks > 1 {
            let p = Double(c.ranks), t: Double
            switch c.kind {
            case "allreduce": t = Projection.ringAllReduceSeconds(bytes: c.bytes, tp: c.ranks, hardware: hw)
            case "all-gather":
                let link = hw.allGatherLink ?? hw.allReduceLink
                t = (p - 1) * Double(c.bytes) / link.bytesPerSecond + (p - 1) * link.stepLatencySeconds
            default:
                let link = hw.reduceScatterLink ?? hw.allReduceLink
                t = (p - 1) / p * Double(c.bytes) / link.bytesPerSecond + (p - 1) * link.stepLatencySeconds
            }
            parts.append(Part(name: c.kind == "allreduce" ? "allreduce" : c.purpose == "latent" ? "latent" : "dcp", seconds: t, collective: true))
        }
        return parts
    }
}
