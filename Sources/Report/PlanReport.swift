import Foundation
import MLA
import Planner
import TensorCore
import TensorParallel

/// Everything `plan` prints, as one Codable document.
public struct PlanReport: Codable, Sendable {
    public struct StageRow: Codable, Sendable {
        public var name: String
        public var kind: String
        public var flops: Int
        public var flopsPerToken: Double
        /// Bytes read and written (in the plan's precision).
        public var bytes: Int
    }
    public struct CostReport: Codable, Sendable {
        public var tokens: Int
        public var stages: [StageRow]
        public var projectionFlops: Int
        public var attentionFlops: Int
        public var totalFlops: Int
        public var bytes: Int
        public init(_ cost: FlopModel.Cost, tokens: Int, bytesPerElement size: Int = 4) {
            self.tokens = tokens
            stages = cost.stages.map {
                StageRow(name: $0.name, kind: $0.kind.rawValue, flops: $0.flops,
                         flopsPerToken: tokens > 0 ? Double($0.flops) / Double(tokens) : 0, bytes: size * $0.elements)
            }
            projectionFlops = cost.projectionFlops
            attentionFlops = cost.attentionFlops
            totalFlops = cost.totalFlops
            bytes = size * cost.elements
        }
    }
    public struct Decode: Codable, Sendable {
        public var path: DecodePath
        /// Cached tokens each sequence attends to (plus the new one).
        public var contexts: [Int]
        public var cost: CostReport
        /// Bytes read and written per decoded token (in the plan's precision).
        public var bytesPerToken: Int
    }
    public struct KVCacheRow: Codable, Sendable {
        /// What the cache holds its tokens in (`--kv-cache-dtype`, resolved).
        public var dtype: KVCacheDType
        /// One token as `dtype` holds it (`KVCacheLayout`), replicated on every rank.
        public var bytesPerToken: Int
        /// After the prefill's tokens, on each rank.
        public var bytesAfterPrefill: Int
        /// One token in each cache dtype, for comparison.
        public var everyDType: [PerToken]
        public struct PerToken: Codable, Sendable, Equatable {
            public var dtype: KVCacheDType
            public var bytesPerToken: Int
        }
    }
    /// One rank's forward buffers, counted as bench counts them (`SizeBudget.activationBytes`, in
    /// the activations' precision): a prefill of the batch's T tokens; and a decode step of its B
    /// sequences, beside the cache those sequences hold.
    public struct Activations: Codable, Sendable, Equatable {
        public var prefillBytes: Int
        public var decodeStepBytes: Int
    }
    public struct Collective: Codable, Sendable {
        public var allReduceCalls: Int
        /// `[T, hidden]` in the plan's precision.
        public var prefillBytes: Int
        public var prefillRingBytesPerRank: Int
        /// `[B, hidden]` for a decode step of B sequences.
        public var decodeBytes: Int
        public var decodeRingBytesPerRank: Int
    }
    public struct GateRow: Codable, Sendable {
        public var layout: GateLayout
        public var gateBytesPerRank: Int
        public var bytesPerRank: Int
        public var gateFlops: Int
        public var prefillFlops: Int
        public var runs: Bool
    }
    /// One gate form of this config (element- or head-wise, separate or packed into q): what its
    /// gate costs a rank under the column split.
    public struct GateFormRow: Codable, Sendable {
        public var granularity: GateForm.Granularity
        public var placement: GateForm.Placement
        /// The gate's weight (and bias) per rank: its own projection, or its rows in the q projection.
        public var gateBytesPerRank: Int
        /// The gate's GEMM FLOPs in the prefill (its share of q's GEMM when packed).
        public var gateFlops: Int
        public var bytesPerRank: Int
        public var prefillFlops: Int

        init(config base: MLAConfig, granularity: GateForm.Granularity, placement: GateForm.Placement, tp: Int, lengths: [Int],
             precision: Precision) throws(CountOverflow) {
            var c = base
            c.useGatedAttn = true
            c.gatedAttnGranularity = granularity.rawValue
            c.gatedAttnPlacement = placement.rawValue
            (self.granularity, self.placement) = (granularity, placement)
            let plan = ShardingPlan(config: c, tp: tp, gate: .column, precision: precision)
            let cost = try FlopModel.prefill(config: c, tp: tp, gate: .column, sequenceLengths: lengths)
            let rows = c.numAttentionHeads / tp * c.gateWidthPerHead, qIn = c.qLoraRank ?? c.hiddenSize
            let T = try Checked.sum(of: lengths, what: "tokens of the batch")
            gateBytesPerRank = placement == .separate ? plan.weights.filter { $0.name.contains(".gate.") }.reduce(0) { $0 + $1.bytesPerRank }
                : try Checked.product(precision.bytesPerElement, rows, qIn, what: "bytes of the gate's rows in q_b_proj")
            gateFlops = placement == .separate ? cost.stage("gate")?.flops ?? 0 : try Checked.product(2, T, rows, qIn, what: "FLOPs of the packed gate")
            bytesPerRank = plan.bytesPerRank
            prefillFlops = cost.totalFlops
        }
    }

    public struct ProjectionReport: Codable, Sendable {
        public var hardware: Hardware
        public var prefill: Projection
        /// By decode path ("naive", "absorbed").
        public var decode: [String: Projection]
    }

    public var model: String
    public var tp: Int
    public var gate: GateLayout
    /// What weights, operands, cache and the allreduce are counted in (nil: f32). FLOPs do not change.
    public var dtype: Precision?
    public var gated: Bool
    public var sequenceLengths: [Int]
    public var plan: ShardingPlan
    public var bytesPerRank: Int
    public var replicatedBytes: Int
    public var shardedBytes: Int
    public var prefill: CostReport
    public var decode: [Decode]
    public var kvCache: KVCacheRow
    public var activations: Activations
    public var collective: Collective
    public var gates: [GateRow]
    /// Every gate form of this config's dimensions, element-wise separate first.
    public var gateForms: [GateFormRow]
    public var projection: ProjectionReport?
    /// When tp pads the heads: FLOPs the job spends on the zero heads in the prefill (nil: no padding).
    public var paddingPrefillFlops: Int?

    /// Every count is checked (`FlopModel`, `Checked`); `plan` calls `SizeBudget.planCounts` first,
    /// so a size too large is refused with its name before this runs.
    public init(config c: MLAConfig, model: String, tp: Int, gate: GateLayout, sequenceLengths lengths: [Int], hardware: Hardware?,
                precision: Precision = .f32, cacheDType: KVCacheDType? = nil, quantization: WeightQuantization? = nil) throws {
        self.model = model
        self.tp = tp
        self.gate = gate
        dtype = precision == .f32 ? nil : precision
        let size = precision.bytesPerElement
        gated = c.useGatedAttn
        sequenceLengths = lengths
        let T = try Checked.sum(of: lengths, what: "tokens of the batch"), B = lengths.count
        plan = ShardingPlan(config: c, tp: tp, gate: gate, precision: precision, quantization: quantization)
        bytesPerRank = plan.bytesPerRank
        replicatedBytes = plan.replicatedBytes
        shardedBytes = plan.shardedBytes
        let prefillCost = try FlopModel.prefill(config: c, tp: tp, gate: gate, sequenceLengths: lengths)
        prefill = CostReport(prefillCost, tokens: T, bytesPerElement: size)
        paddingPrefillFlops = plan.paddedHeads == nil ? nil : FlopModel.paddingFlops(prefillCost, config: c, tp: tp)
        let decodeCosts = try DecodePath.allCases.map { ($0, try FlopModel.decode(config: c, tp: tp, gate: gate, contexts: lengths, path: $0)) }
        decode = decodeCosts.map { path, cost in
            Decode(path: path, contexts: lengths, cost: CostReport(cost, tokens: B, bytesPerElement: size), bytesPerToken: B > 0 ? size * cost.elements / B : 0)
        }
        let cache = cacheDType ?? KVCacheDType(activations: precision), kv = KVCache.bytesPerToken(config: c, dtype: cache)
        kvCache = KVCacheRow(dtype: cache, bytesPerToken: kv, bytesAfterPrefill: try Checked.product(kv, T, what: "KV-cache bytes"),
                             everyDType: KVCacheDType.allCases.map { .init(dtype: $0, bytesPerToken: KVCache.bytesPerToken(config: c, dtype: $0)) })
        activations = Activations(
            prefillBytes: try SizeBudget.activationBytes(tokens: T, config: c, tp: tp, precision: precision),
            decodeStepBytes: try Checked.sum(SizeBudget.activationBytes(tokens: B, config: c, tp: tp, precision: precision), kvCache.bytesAfterPrefill,
                                             what: "bytes of a decode step"))
        let pb = ShardingPlan.allReduceBytes(tokens: T, config: c, bytesPerElement: size)
        let db = ShardingPlan.allReduceBytes(tokens: B, config: c, bytesPerElement: size)
        collective = Collective(allReduceCalls: tp > 1 ? 1 : 0, prefillBytes: pb, prefillRingBytesPerRank: ShardingPlan.ringBytesPerRank(pb, tp: tp),
                                decodeBytes: db, decodeRingBytesPerRank: ShardingPlan.ringBytesPerRank(db, tp: tp))
        gates = try GateLayout.applicable(to: c).map { layout in
            let p = ShardingPlan(config: c, tp: tp, gate: layout, precision: precision, quantization: quantization)
            let cost = try FlopModel.prefill(config: c, tp: tp, gate: layout, sequenceLengths: lengths)
            return GateRow(layout: layout, gateBytesPerRank: p.weights.filter { $0.name.contains(".gate.") }.reduce(0) { $0 + $1.bytesPerRank },
                           bytesPerRank: p.bytesPerRank, gateFlops: cost.stage("gate")?.flops ?? 0, prefillFlops: cost.totalFlops, runs: p.runs)
        }
        gateForms = []
        for p in GateForm.Placement.allCases {
            for g in GateForm.Granularity.allCases {
                gateForms.append(try GateFormRow(config: c, granularity: g, placement: p, tp: tp, lengths: lengths, precision: precision))
            }
        }
        if let hardware {
            var byPath: [String: Projection] = [:]
            for (path, cost) in decodeCosts { byPath[path.rawValue] = Projection(cost: cost, tokens: B, config: c, tp: tp, hardware: hardware) }
            projection = ProjectionReport(hardware: hardware,
                                          prefill: Projection(cost: prefillCost, tokens: T, config: c, tp: tp, hardware: hardware),
                                          decode: byPath)
        }
    }

    public func json() throws -> String { try Format.json(self) }
}
