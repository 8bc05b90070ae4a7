import Foundation
import MLA
import Measure
import Planner
import TensorCore
import TensorParallel

/// What one communicator carried for this rank: its name and, per kind of collective, the
/// calls and the bytes this rank contributed.
public struct CommunicatorTraffic: Codable, Sendable {
    public struct Kind: Codable, Sendable {
        public var kind: Collectives.SegmentKind
        public var calls: Int
        public var bytes: Int
    }
    public var name: String
    public var kinds: [Kind]
    /// How its last allreduce was done (shared-memory window or MPI_Allreduce), if it made one.
    public var allReducePath: Collectives.AllReducePath?

    public init(_ c: Collectives) {
        name = c.name
        allReducePath = c.lastPath == .none ? nil : c.lastPath
        kinds = Collectives.SegmentKind.allCases.compactMap { k in c.traffic[k].map { Kind(kind: k, calls: $0.calls, bytes: $0.bytes) } }
    }
}

/// What each rank tells rank 0 after a run.
public struct RankFacts: Codable, Sendable {
    public var rank: Int
    /// Bytes this rank read from checkpoint files (0 for seeded weights).
    public var bytesReadFromFiles: Int
    public var anonymousMemory: Int
    public var weightBytes: Int
    /// Its DP group, TP rank and DCP index.
    public var position: ParallelLayout.Position
    /// Tokens its latent cache holds at the end, and their bytes as held (nil without the cache).
    public var cachedTokens: Int?
    public var cacheBytes: Int?
    public var communicators: [CommunicatorTraffic]

    public init(rank: Int, bytesReadFromFiles: Int, anonymousMemory: Int, weightBytes: Int, position: ParallelLayout.Position,
                cachedTokens: Int?, cacheBytes: Int? = nil, communicators: [CommunicatorTraffic]) {
        self.rank = rank
        self.bytesReadFromFiles = bytesReadFromFiles
        self.anonymousMemory = anonymousMemory
        self.weightBytes = weightBytes
        self.position = position
        self.cachedTokens = cachedTokens
        self.cacheBytes = cacheBytes
        self.communicators = communicators
    }
}

/// What `run` prints on rank 0: the per-rank plan, the collective traffic, the timing and the check.
public struct RunReport: Codable, Sendable {
    public struct RankRow: Codable, Sendable {
        public var rank: Int
        public var heads: [Int]
        public var bytes: Int
        public var bytesReadFromFiles: Int = 0
        public var anonymousMemory: Int = 0
        /// Data-parallel group and DCP index (nil without those layouts), cached tokens and their bytes as held.
        public var dpGroup: Int?
        public var dcpIndex: Int?
        public var cachedTokens: Int?
        public var cacheBytes: Int?
        public var communicators: [CommunicatorTraffic]?
        /// The rank's host (`MPI_Get_processor_name`) and node (ranks that share memory).
        public var host: String?
        public var node: Int?
    }
    public struct Serving: Codable, Sendable {
        public var decodeSteps: Int
        public var prefillChunk: Int?
        public var decode: DecodePath
        public var steps: Int
        /// Tokens prefilled and tokens decoded one at a time, over the batch.
        public var prefillTokens: Int
        public var decodeTokens: Int
        /// Lengths of the sequences shorter than `decodeSteps` (they decode all their tokens).
        public var shorterThanDecodeSteps: [Int]
        /// What the cache holds its tokens in, the bytes of one token so held, and the most
        /// bytes any rank's cache holds at the end (counted by the caches themselves).
        public var cacheDType: KVCacheDType
        public var cacheBytesPerToken: Int
        public var cacheBytesPerRank: Int
        /// Whether the check's reference was served through the same cache (a cache that does
        /// not give back the values appended, so only its sharding is checked).
        public var checkedAgainstServed: Bool
        /// With such a cache and the check on: the output against the plain unsharded forward in
        /// the run's precision, what the cache's rounding costs (no tolerance: a measurement).
        public var againstPlainForward: Comparison?

        public init(decodeSteps: Int, prefillChunk: Int?, decode: DecodePath, steps: Int, prefillTokens: Int, decodeTokens: Int,
                    shorterThanDecodeSteps: [Int], cacheDType: KVCacheDType, cacheBytesPerToken: Int, cacheBytesPerRank: Int,
                    checkedAgainstServed: Bool) {
            (self.decodeSteps, self.prefillChunk, self.decode, self.steps) = (decodeSteps, prefillChunk, decode, steps)
            (self.prefillTokens, self.decodeTokens, self.shorterThanDecodeSteps) = (prefillTokens, decodeTokens, shorterThanDecodeSteps)
            (self.cacheDType, self.cacheBytesPerToken, self.cacheBytesPerRank) = (cacheDType, cacheBytesPerToken, cacheBytesPerRank)
            self.checkedAgainstServed = checkedAgainstServed
        }
    }

    public var preset: String
    public var layer: Int
    public var tp: Int
    /// dp · tp ranks, dcp (nil fields: plain tensor parallelism).
    public var dp: Int?
    public var dcp: Int?
    /// Sequences (batch indices) per data-parallel group.
    public var assignment: [[Int]]?
    /// Where the ranks ran: `node 0 (host-a): ranks 0, 1; node 1 (host-b): ranks 2, 3`.
    public var placement: String?
    public var gate: GateLayout
    public var gated: Bool
    public var activation: String
    public var tokens: Int
    public var hidden: Int
    public var sequences: Int
    public var plan: ShardingPlan
    public var ranks: [RankRow]
    public var output: String?
    public var serving: Serving?
    public var allReduceCalls: Int
    public var allReduceBytes: Int
    public var ringBytesPerRank: Int
    public var forwardSeconds: Double
    public var allReduceSeconds: Double
    /// How the last forward's allreduce was done.
    public var allReducePath: Collectives.AllReducePath?
    public var flops: Int
    public var check: CheckResult?
    /// When the check failed: each head's relative error in o_proj's input (`attn ⊙ act(gate)`).
    public var headErrors: [HeadError]?
    /// What weights and activations are stored in, and what the allreduce sums in (nil: f32).
    public var dtype: Precision?
    public var allReduceDType: Precision?
    /// Which kernel ran each projection on rank 0, and how oneDNN runs bf16 on this CPU.
    public var kernels: [ProjectionKernel]?
    public var oneDNNBF16: String?
    /// A bf16 run's check beyond `check` (which is against tp = 1 in bf16): bit identity with it,
    /// and the comparison with the unsharded f32 forward.
    public var precisionCheck: PrecisionCheck?
    /// `invariant` under `--invariant` (nil: the default mode): then `check` is against the
    /// unsharded invariant forward and passes only when bit-identical to it.
    public var mode: ForwardMode?
    /// How q_a_proj and kv_a_proj_with_mqa were held (nil: replicated), and the latent all-gather
    /// this rank-0 made: calls and the bytes it contributed (nil when it made none).
    public var latent: LatentProjection?
    public var latentGather: CommunicatorTraffic.Kind?
    /// Passes of the same work the run made (nil: one; a layout sweep's timing), rank 0's seconds
    /// in each, and, for the fastest pass (the one `forwardSeconds` is), rank 0's seconds in each
    /// forward stage.
    public var passes: Int?
    public var passSeconds: [Double]?
    public var stageSeconds: [String: Double]?
    public struct HeadError: Codable, Sendable, Equatable {
        public var head: Int
        public var relative: Float

        public init(head: Int, relative: Float) {
            self.head = head
            self.relative = relative
        }
    }

    /// The heads whose o_proj input differs by more than the check's tolerance, as ranges ("0–3, 6").
    public func differingHeads(tolerance: Float) -> String {
        let bad = (headErrors ?? []).filter { !($0.relative <= tolerance) }.map(\.head)
        var parts: [String] = [], i = 0
        while i < bad.count {
            var j = i
            while j + 1 < bad.count && bad[j + 1] == bad[j] + 1 { j += 1 }
            parts.append(i == j ? "\(bad[i])" : "\(bad[i])–\(bad[j])")
            i = j + 1
        }
        return parts.joined(separator: ", ")
    }

    public init(config: MLAConfig, model: String, layer: Int, layout: ParallelLayout, gate: GateLayout, batch: Batch,
                counters: ForwardCounters, collectives: Collectives, facts: [RankFacts], hosts: [String], nodes: [Int], placement: String,
                check: CheckResult?,
                precision: Precision = .f32, quantization: WeightQuantization = .none) {
        preset = model
        self.layer = layer
        let tp = layout.tp
        self.tp = tp
        dp = layout.dp > 1 ? layout.dp : nil
        dcp = layout.dcp > 1 ? layout.dcp : nil
        self.gate = gate
        gated = config.useGatedAttn
        activation = config.gatedAttnAct
        tokens = batch.tokenCount
        hidden = config.hiddenSize
        sequences = batch.sequenceCount
        let plan = ShardingPlan(config: config, tp: tp, gate: gate, layer: layer, precision: precision, quantization: quantization,
                                latent: layout.latent)
        latent = layout.latent == .replicated ? nil : layout.latent
        latentGather = CommunicatorTraffic(collectives).kinds.first { $0.kind == .gather }
        self.plan = plan
        ranks = facts.map { f in
            let h = ShardingPlan.heads(rank: f.position.tpRank, tp: tp, config: config)
            return RankRow(rank: f.rank, heads: [h.lowerBound, h.upperBound], bytes: f.weightBytes,
                           bytesReadFromFiles: f.bytesReadFromFiles, anonymousMemory: f.anonymousMemory,
                           dpGroup: layout.dp > 1 ? f.position.dpGroup : nil, dcpIndex: layout.dcp > 1 ? f.position.dcpIndex : nil,
                           cachedTokens: f.cachedTokens, cacheBytes: f.cacheBytes, communicators: f.communicators,
                           host: hosts[f.rank], node: nodes[f.rank])
        }
        self.placement = placement
        allReduceCalls = tp > 1 ? 1 : 0
        allReduceBytes = ShardingPlan.allReduceBytes(tokens: batch.tokenCount, config: config,
                                                     bytesPerElement: collectives.reducePrecision.bytesPerElement)
        ringBytesPerRank = ShardingPlan.ringBytesPerRank(allReduceBytes, tp: tp)
        forwardSeconds = counters.seconds
        let stages = ForwardStage.allCases.map { ($0.rawValue, counters.seconds(in: $0)) }.filter { $0.1 > 0 }
        stageSeconds = stages.isEmpty ? nil : Dictionary(uniqueKeysWithValues: stages)
        allReduceSeconds = collectives.seconds
        allReducePath = collectives.lastPath
        flops = counters.totalFlops
        self.check = check
        dtype = precision == .f32 ? nil : precision
        allReduceDType = precision == .f32 && collectives.reducePrecision == .f32 ? nil : collectives.reducePrecision
        kernels = counters.kernels
        oneDNNBF16 = OneDNN.bf16Support.rawValue
    }

    public func json() throws -> String { try Format.json(self) }
}
