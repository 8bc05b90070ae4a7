import Foundation
import MLA
import Measure
import TensorCore
import TensorParallel

/// What each rank tells rank 0 after a run.
public struct RankFacts: Codable, Sendable {
    public var rank: Int
    /// Bytes this rank read from checkpoint files (0 for seeded weights).
    public var bytesReadFromFiles: Int
    public var anonymousMemory: Int
    public var weightBytes: Int
    public init(rank: Int, bytesReadFromFiles: Int, anonymousMemory: Int, weightBytes: Int) {
        self.rank = rank
        self.bytesReadFromFiles = bytesReadFromFiles
        self.anonymousMemory = anonymousMemory
        self.weightBytes = weightBytes
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
        public var cacheBytesPerToken: Int
        public var cacheBytesPerRank: Int
    }

    public var preset: String
    public var layer: Int
    public var tp: Int
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

    public init(config: MLAConfig, model: String, layer: Int, tp: Int, gate: GateLayout, batch: Batch,
                counters: ForwardCounters, collectives: Collectives, facts: [RankFacts], check: CheckResult?) {
        preset = model
        self.layer = layer
        self.tp = tp
        self.gate = gate
        gated = config.useGatedAttn
        activation = config.gatedAttnAct
        tokens = batch.tokenCount
        hidden = config.hiddenSize
        sequences = batch.sequenceCount
        let plan = ShardingPlan(config: config, tp: tp, gate: gate, layer: layer)
        self.plan = plan
        ranks = facts.map { f in
            let h = ShardingPlan.heads(rank: f.rank, tp: tp, config: config)
            return RankRow(rank: f.rank, heads: [h.lowerBound, h.upperBound], bytes: f.weightBytes,
                           bytesReadFromFiles: f.bytesReadFromFiles, anonymousMemory: f.anonymousMemory)
        }
        allReduceCalls = tp > 1 ? 1 : 0
        allReduceBytes = ShardingPlan.allReduceBytes(tokens: batch.tokenCount, config: config)
        ringBytesPerRank = ShardingPlan.ringBytesPerRank(allReduceBytes, tp: tp)
        forwardSeconds = counters.seconds
        allReduceSeconds = collectives.seconds
        allReducePath = collectives.lastPath
        flops = counters.totalFlops
        self.check = check
    }

    public func json() throws -> String { try Format.json(self) }
}
