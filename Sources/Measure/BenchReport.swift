import MLA
import TensorCore
import TensorParallel

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
        /// Why the target is not judged here (then `pass` is false and the verdict reads "n/a (…)"),
        /// e.g. a bf16 target on a CPU without native bf16: "no native bf16: <the kernel that ran>".
        public var notApplicable: String?

        /// PASS, MISS or n/a (why).
        public var verdict: String { notApplicable.map { "n/a (\($0))" } ?? (pass ? "PASS" : "MISS") }
    }

    /// bf16 runs (nil: f32): what the weights and activations are stored in, what the allreduce
    /// sums in, how oneDNN runs bf16 on this CPU, and the PyTorch bf16 + gloo baseline held against.
    public var dtype: Precision?
    public var allReduceDType: Precision?
    public var oneDNNBF16: String?
    public var torchBaseline: TorchBaseline?

    /// `invariant` under `--invariant` (nil: the default mode), whose cost against the default
    /// mode measured in the same run is judged by two targets.
    public var mode: ForwardMode?
    /// How q_a_proj and kv_a_proj_with_mqa were held (`--latent-proj`; nil: replicated).
    public var latent: LatentProjection?

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
                repeats: Int, warmup: Int, decodePath: DecodePath?, batch: Int?, ranks: [BenchRankResult],
                precision: Precision = .f32, allReduceDType: Precision = .f32, bf16Support: OneDNN.BF16Support = OneDNN.bf16Support,
                torchBaseline: TorchBaseline? = nil) {
        self.model = model
        self.tp = tp
        self.gate = gate
        hidden = config.hiddenSize
        heads = config.numAttentionHeads
        localHeads = config.localHeads(tp: tp)
        self.tokens = tokens
        self.repeats = repeats
        self.warmup = warmup
        self.decodePath = decodePath
        self.batch = batch
        self.cpus = cpus
        self.loadAverage = loadAverage
        blasThreads = ranks.map(\.blasThreads)
        self.ranks = ranks
        if precision == .bf16 {
            dtype = precision
            self.allReduceDType = allReduceDType
            oneDNNBF16 = bf16Support.rawValue
            self.torchBaseline = torchBaseline
        }
        targets = BenchReport.judge(ranks, tp: tp, precision: precision, bf16Support: bf16Support, torch: torchBaseline)
    }

    /// Under `--invariant`: the slowest rank's median of `phase` in the invariant mode and in the
    /// default mode measured in the same run (nil unless every rank has both).
    public static func invariantCost(_ ranks: [BenchRankResult], _ phase: Phase) -> (invariant: Double, default: Double)? {
        let pairs = ranks.map { r in phase == .prefill ? (r.prefill, r.defaultMode?.prefill) : (r.decode, r.defaultMode?.decode) }
        guard !pairs.isEmpty, phase != .load else { return nil }
        let invariant = pairs.compactMap { $0.0?.totalSeconds.median }, plain = pairs.compactMap { $0.1?.totalSeconds.median }
        guard invariant.count == pairs.count, plain.count == pairs.count else { return nil }
        return (invariant.max() ?? 0, plain.max() ?? 0)
    }

    /// The performance targets, each on the worst rank. A bf16 run holds its GEMM efficiency
    /// against oneDNN's bf16 matmul and its prefill against PyTorch bf16 + gloo (issue 14's
    /// targets); on a CPU without native bf16 those targets, decode bandwidth and memory are n/a.
    public static func judge(_ ranks: [BenchRankResult], tp: Int, precision: Precision = .f32,
                             bf16Support: OneDNN.BF16Support = .native, torch: TorchBaseline? = nil) -> [Target] {
        var list: [Target] = []
        func add(_ name: String, _ phase: Phase, _ value: Double, _ bound: Double, atLeast: Bool, _ detail: String, notApplicable: String? = nil) {
            list.append(Target(name: name, phase: phase, value: value, bound: bound, atLeast: atLeast,
                               pass: notApplicable == nil && (atLeast ? value >= bound : value <= bound), detail: detail, notApplicable: notApplicable))
        }
        let bf16 = precision == .bf16
        /// A bf16 target on a CPU without native bf16: n/a, naming the kernel the phase's reference projection ran on.
        func withoutNativeBF16(_ results: [BenchPhaseResult]) -> String? {
            guard bf16 && bf16Support != .native else { return nil }
            let r = results.first
            let kernel = r?.kernels?.first { $0.projection == r?.referenceProjection }?.kernel ?? "oneDNN's bf16 is \(bf16Support.rawValue)"
            return "no native bf16: \(kernel)"
        }
        for (phase, results) in [(Phase.prefill, ranks.compactMap(\.prefill)), (.decode, ranks.compactMap(\.decode))] {
            guard results.count == ranks.count, !results.isEmpty else { continue }
            let na = withoutNativeBF16(results)
            if phase == .prefill {
                if let worst = results.compactMap(\.gemmEfficiency).min() {
                    add("gemm-efficiency", phase, worst, 0.9, atLeast: true, bf16
                        ? "GEMM FLOPs over the whole forward's wall time ÷ the rate of a oneDNN bf16 matmul of the same weight's shape run right after it; median over forwards, worst rank"
                        : "GEMM FLOPs over the whole forward's wall time ÷ the rate of the same product on the layer's own kernel run right after it; median over forwards, worst rank",
                        notApplicable: na)
                }
                if bf16 {
                    let slowest = results.map(\.totalSeconds.median).max() ?? 0
                    add("prefill-vs-torch-bf16", phase, torch.map { slowest / max($0.seconds, 1e-12) } ?? 0, 0.8, atLeast: false,
                        "the prefill (slowest rank's median) ÷ PyTorch bf16 + gloo's (scripts/bench/torch_gloo_baseline.py --dtype bfloat16, slowest rank's median)",
                        notApplicable: na ?? (torch == nil ? "no PyTorch baseline: pass --torch-baseline FILE" : nil))
                }
            } else if let worst = results.compactMap(\.bandwidthEfficiency).min() {
                add("decode-bandwidth", phase, worst, 0.7, atLeast: true,
                    "weight bytes per step (in their own precision: bf16 counts 2) ÷ step time, over the memcpy bandwidth (read + write) measured right after it; median over steps, worst rank",
                    notApplicable: na)
            }
            if tp > 1, let worst = results.compactMap(\.allReduceRatio).max() {
                add("allreduce-overhead", phase, worst, 1.2, atLeast: false,
                    "the forward's allreduce (after its barrier) ÷ a raw MPI_Allreduce of the same bytes right after it; median over forwards, worst rank")
            }
            let memory = results.map { Double($0.memory.anonymousBytes) / Double(max($0.memory.budgetBytes, 1)) }
            add("memory", phase, memory.max() ?? 0, 1, atLeast: false,
                "anonymous RSS ÷ (1.1 × (shard + replicated) + activations) (worst rank)", notApplicable: na)
            let transient = results.map { r in
                Double(max(0, r.memory.peakDuringTimedBytes - r.memory.rssBeforeTimedBytes)) / Double(max(r.memory.smallestWeightBytes, 1))
            }
            add("no-weight-sized-allocation", phase, transient.max() ?? 0, 1, atLeast: false,
                "peak RSS during the timed forwards minus RSS before them ÷ the smallest local weight (worst rank)")
            let flopsMatch = results.allSatisfy { $0.flops == $0.planFlops } && Set(results.map(\.flops)).count == 1
            add("flops-equal-plan", phase, flopsMatch ? 1 : 0, 1, atLeast: true,
                "FLOPs counted while executing equal FlopModel's count, on every rank")
        }
        // The invariant mode's price, against the default mode measured in the same run.
        for (phase, bound) in [(Phase.prefill, 1.15), (.decode, 1.10)] {
            guard let (fixed, plain) = invariantCost(ranks, phase) else { continue }
            add("invariant-\(phase.rawValue)-cost", phase, fixed / max(plain, 1e-12), bound, atLeast: false,
                "the invariant mode's \(phase == .prefill ? "prefill" : "decode step") ÷ the default mode's, measured in the same run (slowest rank's medians)")
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
