import MLA

/// What `bench` reports on rank 0: every rank's results per phase, and the targets with their verdicts.
public struct BenchReport: Codable, Sendable {
    /// Where a target is judged.
    public enum Phase: String, Codable, Sendable { case prefill, decode, load }

    /// One performance target, judged on the worst rank.
    public struct Target: Codable, Sendable {
        public var name: String
        public var phase: Phase
        /// The measured value and the bound it is held against (`value ≥ bound` or `value ≤ bound`).
        public var value: Double
        public var bound: Double
        public var atLeast: Bool
        public var pass: Bool
        public var detail: String
    }

    public var command = "bench"
    public var model: String
    public var tp: Int
    public var gate: GateLayout
    public var hidden: Int
    public var heads: Int
    public var localHeads: Int
    public var tokens: Int
    public var repeats: Int
    public var warmup: Int
    public var decodePath: DecodePath?
    public var batch: Int?
    public var cpus: Int
    /// The 1-minute load average when the bench started (nil where /proc/loadavg is unreadable).
    public var loadAverage: Double?
    public var blasThreads: [Int]
    public var ranks: [BenchRankResult]
    public var targets: [Target]
    /// The sharded prefill output against the unsharded forward (`--check`).
    public var check: CheckResult?

    public init(model: String, config: MLAConfig, tp: Int, gate: GateLayout, loadAverage: Double?, cpus: Int, tokens: Int,
                repeats: Int, warmup: Int, decodePath: DecodePath?, batch: Int?, ranks: [BenchRankResult]) {
        self.model = model
        self.tp = tp
        self.gate = gate
        hidden = config.hiddenSize
        heads = config.numAttentionHeads
        localHeads = config.numAttentionHeads / tp
        self.tokens = tokens
        self.repeats = repeats
        self.warmup = warmup
        self.decodePath = decodePath
        self.batch = batch
        self.cpus = cpus
        self.loadAverage = loadAverage
        blasThreads = ranks.map(\.blasThreads)
        self.ranks = ranks
        targets = BenchReport.judge(ranks, tp: tp)
    }

    /// The performance targets, each on the worst rank.
    public static func judge(_ ranks: [BenchRankResult], tp: Int) -> [Target] {
        var list: [Target] = []
        func add(_ name: String, _ phase: Phase, _ value: Double, _ bound: Double, atLeast: Bool, _ detail: String) {
            list.append(Target(name: name, phase: phase, value: value, bound: bound, atLeast: atLeast,
                               pass: atLeast ? value >= bound : value <= bound, detail: detail))
        }
        for (phase, results) in [(Phase.prefill, ranks.compactMap(\.prefill)), (.decode, ranks.compactMap(\.decode))] {
            guard results.count == ranks.count, !results.isEmpty else { continue }
            if phase == .prefill {
                if let worst = results.compactMap(\.gemmEfficiency).min() {
                    add("gemm-efficiency", phase, worst, 0.9, atLeast: true,
                        "GEMM FLOPs over the whole forward's wall time ÷ the rate of the cblas_sgemm run right after it; median over forwards, worst rank")
                }
            } else if let worst = results.compactMap(\.bandwidthEfficiency).min() {
                add("decode-bandwidth", phase, worst, 0.7, atLeast: true,
                    "weight bytes per step ÷ step time, over the memcpy bandwidth (read + write) measured right after it; median over steps, worst rank")
            }
            if tp > 1, let worst = results.compactMap(\.allReduceRatio).max() {
                add("allreduce-overhead", phase, worst, 1.2, atLeast: false,
                    "the forward's allreduce (after its barrier) ÷ a raw MPI_Allreduce of the same bytes right after it; median over forwards, worst rank")
            }
            let memory = results.map { Double($0.memory.anonymousBytes) / Double(max($0.memory.budgetBytes, 1)) }
            add("memory", phase, memory.max() ?? 0, 1, atLeast: false,
                "anonymous RSS ÷ (1.1 × (shard + replicated) + activations) (worst rank)")
            let transient = results.map { r in
                Double(max(0, r.memory.peakDuringTimedBytes - r.memory.rssBeforeTimedBytes)) / Double(max(r.memory.smallestWeightBytes, 1))
            }
            add("no-weight-sized-allocation", phase, transient.max() ?? 0, 1, atLeast: false,
                "peak RSS during the timed forwards minus RSS before them ÷ the smallest local weight (worst rank)")
            let flopsMatch = results.allSatisfy { $0.flops == $0.planFlops } && Set(results.map(\.flops)).count == 1
            add("flops-equal-plan", phase, flopsMatch ? 1 : 0, 1, atLeast: true,
                "FLOPs counted while executing equal FlopModel's count, on every rank")
        }
        // Each rank holds exactly its plan's bytes, and building the layer grew its anonymous memory by
        // about that much (never by the full layer's).
        let exact = ranks.allSatisfy { r in (r.prefill ?? r.decode).map { $0.memory.weightBytes == $0.memory.replicatedBytes + $0.memory.shardBytes } ?? true }
        let growth = ranks.map { Double($0.loadedAnonymousBytes - $0.runtimeAnonymousBytes) / Double(max($0.weightBytes, 1)) }
        add("own-shard-only", .load, exact ? growth.max() ?? 0 : 1e9, 1.1, atLeast: false,
            "anonymous RSS added by building the layer ÷ the rank's plan bytes (shard + replicated), which must equal its weights (worst rank)")
        return list
    }
}
