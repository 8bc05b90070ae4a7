import MLA

/// What a timeline segment shows. The forward's stages, plus `compute` for files written before
/// the stages were timed apart (one compute bar per rank).
public enum SegmentKind: String, Codable, Sendable, CaseIterable {
    case compute, q, kv, attention, gate
    case oProj = "o_proj"
    case wait
    case allReduce = "allreduce"
    case contextExchange = "dcp"
    case latentGather = "latent"

    public init(_ stage: ForwardStage) {
        switch stage {
        case .q: self = .q
        case .kv: self = .kv
        case .attention: self = .attention
        case .gate: self = .gate
        case .oProj: self = .oProj
        case .wait: self = .wait
        case .allReduce: self = .allReduce
        case .contextExchange: self = .contextExchange
        case .latentGather: self = .latentGather
        }
    }
}

/// One rank's timed forwards, as it sends them to rank 0.
public struct RankSteps: Codable, Sendable {
    public struct Forward: Codable, Sendable {
        /// On `Clock.now()`, one clock for every process of the host.
        public var start: Double
        public var end: Double
        public var segments: [StageSegment]
        public init(start: Double, end: Double, segments: [StageSegment]) {
            self.start = start
            self.end = end
            self.segments = segments
        }
        /// The wait before the allreduce and the allreduce itself.
        public var allReduceSeconds: Double {
            segments.reduce(0) { $0 + ($1.stage == .wait || $1.stage == .allReduce ? $1.seconds : 0) }
        }
    }
    public var rank: Int
    public var anonymousBytes: Int
    public var weightBytes: Int
    public var flops: Int
    public var forwards: [Forward]
    public init(rank: Int, anonymousBytes: Int, weightBytes: Int, flops: Int, forwards: [Forward]) {
        self.rank = rank
        self.anonymousBytes = anonymousBytes
        self.weightBytes = weightBytes
        self.flops = flops
        self.forwards = forwards
    }
}

/// What one sweep step measured, as rank 0 writes it.
public struct StepResult: Codable, Sendable {
    public struct Segment: Codable, Sendable { public var kind: SegmentKind; public var start: Double; public var end: Double }
    public struct RankStat: Codable, Sendable {
        public var rank: Int
        public var anonymousBytes: Int
        public var weightBytes: Int
        public var flops: Int
        /// Median over repeats of this rank's forward and allreduce seconds (the wait before it included).
        public var forwardSeconds: Double
        public var allReduceSeconds: Double
    }

    public var model: String
    public var tp: Int
    public var gate: GateLayout
    /// New tokens per forward (the prefill's T, or 1 for a decode step).
    public var tokens: Int
    public var context: Int?
    public var decode: DecodePath?
    /// What a decode step's cache held its tokens in.
    public var cacheDType: KVCacheDType?
    public var repeats: Int
    /// Per repeat: from the first rank's start to the last rank's end.
    public var forwardSeconds: [Double]
    /// Median of `forwardSeconds`.
    public var seconds: Double
    /// Fastest of `forwardSeconds` (the least disturbed by other work on a shared machine),
    /// and the mean allreduce time over ranks in that repeat.
    public var bestSeconds: Double
    public var bestAllReduceSeconds: Double
    /// Median over repeats of the mean allreduce time over ranks (the barrier before it, where a
    /// rank waits for slower ones, included); compute is the rest.
    public var allReduceSeconds: Double
    public var computeSeconds: Double { seconds - allReduceSeconds }
    public var ranks: [RankStat]
    /// The fastest repeat, per rank, on a shared clock starting at 0: every stage as it ran.
    public var timeline: [[Segment]]
    /// Rates measured in the same job just before (`--probe-first`).
    public var rates: MeasuredRates?

    public init(model: String, tp: Int, gate: GateLayout, tokens: Int, context: Int?, decode: DecodePath?, ranks steps: [RankSteps]) {
        self.model = model
        self.tp = tp
        self.gate = gate
        self.tokens = tokens
        self.context = context
        self.decode = decode
        let repeats = steps.map(\.forwards.count).min() ?? 0
        self.repeats = repeats
        let durations = (0..<repeats).map { i in
            (steps.map { $0.forwards[i].end }.max() ?? 0) - (steps.map { $0.forwards[i].start }.min() ?? 0)
        }
        let reduces = (0..<repeats).map { i in steps.map { $0.forwards[i].allReduceSeconds }.reduce(0, +) / Double(max(steps.count, 1)) }
        forwardSeconds = durations
        seconds = Samples(durations).median
        allReduceSeconds = Samples(reduces).median
        let fastest = durations.indices.min { durations[$0] < durations[$1] } ?? 0
        bestSeconds = durations.isEmpty ? 0 : durations[fastest]
        bestAllReduceSeconds = reduces.isEmpty ? 0 : reduces[fastest]
        ranks = steps.map { s in
            RankStat(rank: s.rank, anonymousBytes: s.anonymousBytes, weightBytes: s.weightBytes, flops: s.flops,
                     forwardSeconds: Samples(s.forwards.map { $0.end - $0.start }).median,
                     allReduceSeconds: Samples(s.forwards.map(\.allReduceSeconds)).median)
        }
        let origin = repeats > 0 ? steps.map { $0.forwards[fastest].start }.min() ?? 0 : 0
        timeline = repeats > 0 ? steps.map { s in
            s.forwards[fastest].segments.map { Segment(kind: SegmentKind($0.stage), start: $0.start - origin, end: $0.end - origin) }
        } : []
    }
}
