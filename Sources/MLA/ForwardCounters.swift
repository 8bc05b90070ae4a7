import TensorCore
import TensorParallel

/// The stages of one forward, in order, as the counters, the numeric guard, bench and the
/// timeline name them.
public enum ForwardStage: String, Codable, Sendable, CaseIterable {
    /// q_a → q_a_layernorm → q_b (or q_proj): `[T, H/tp·(nope+rope)]`.
    case q
    /// kv_a → kv_a_layernorm (→ kv_b on the expanding paths).
    case kv
    /// RoPE and causal attention over the new tokens and the cache: `[T, H/tp·v]`.
    case attention
    /// `attn ⊙ act(gate(x))` on the rank's heads.
    case gate
    /// o_proj's partial product `[T, hidden]` (and its bias, once, after the reduce).
    case oProj = "o_proj"
    /// The barrier before the allreduce when `Collectives.separateWait` is on: waiting for slower ranks.
    case wait
    /// The allreduce of o_proj's partial sums.
    case allReduce = "allreduce"
    /// Decode context parallelism's exchanges: the all-gathers of queries and log-sum-exps and
    /// the reduce-scatter of partial outputs (carved out of the attention stage).
    case contextExchange = "dcp"
    /// The sharded latent projections' all-gather (`--latent-proj column|sequence`), with its copies.
    case latentGather = "latent"

    /// The stages that are this rank's own arithmetic (not waiting, not communicating).
    public static let compute: [ForwardStage] = [.q, .kv, .attention, .gate, .oProj]
}

/// One timed stage on `Clock.now()` (the same clock in every process of a host).
public struct StageSegment: Codable, Sendable, Equatable {
    public var stage: ForwardStage
    public var start: Double
    public var end: Double
    public init(stage: ForwardStage, start: Double, end: Double) {
        self.stage = stage
        self.start = start
        self.end = end
    }
    public var seconds: Double { end - start }
}

/// Which kernel ran one projection's product ("which kernel ran", in run and bench reports).
public struct ProjectionKernel: Codable, Sendable, Equatable {
    /// The projection's HF name within the layer, e.g. `q_a_proj`.
    public var projection: String
    /// `GemmKernel`'s description, e.g. `oneDNN matmul brg:avx512_core_bf16` or the fallback.
    public var kernel: String
    public init(projection: String, kernel: String) {
        self.projection = projection
        self.kernel = kernel
    }
}

/// What the last forward issued and how long each stage took, for reports and for checking
/// the plan's arithmetic.
public struct ForwardCounters: Equatable, Sendable {
    /// FLOPs of the projections (every GEMM outside attention).
    public var projectionFlops = 0
    /// FLOPs of the attention GEMMs (scores and P·V).
    public var attentionFlops = 0
    /// Seconds in the forward, collectives included.
    public var seconds: Double = 0
    /// Each stage as it ran, in order (a serving pass holds every step's stages).
    public var segments: [StageSegment] = []
    /// The kernel each projection ran on, first seen first (a serving pass can list a projection
    /// twice: its prefill and its decode products take different kernels).
    public var kernels: [ProjectionKernel] = []
    public var totalFlops: Int { projectionFlops + attentionFlops }

    /// Records that `projection` (a layer's HF name; its last component is kept) ran on `kernel`.
    public mutating func record(_ kernel: GemmKernel, for projection: String) {
        guard kernel != .empty else { return }
        let entry = ProjectionKernel(projection: String(projection.split(separator: ".").last ?? Substring(projection)),
                                     kernel: kernel.description)
        if !kernels.contains(entry) { kernels.append(entry) }
    }

    public init() {}

    /// Seconds spent in `stage` (summed over its segments).
    public func seconds(in stage: ForwardStage) -> Double {
        segments.reduce(0) { $0 + ($1.stage == stage ? $1.seconds : 0) }
    }

    /// Seconds in the rank's own arithmetic: the compute stages, each timed on its own.
    public var computeSeconds: Double { ForwardStage.compute.reduce(0) { $0 + seconds(in: $1) } }

    /// Adds another forward's counts and stages (the steps of a serving pass).
    public mutating func add(_ other: ForwardCounters) {
        projectionFlops += other.projectionFlops
        attentionFlops += other.attentionFlops
        seconds += other.seconds
        segments += other.segments
        for k in other.kernels where !kernels.contains(k) { kernels.append(k) }
    }
}

extension MLAAttention {
    /// Runs `body` as `stage`, recording its segment; collectives recorded inside it (decode
    /// context parallelism's exchanges) are carved out, so stages never overlap.
    @inline(__always)
    func timed<T>(_ stage: ForwardStage, _ body: () throws -> T) rethrows -> T {
        let start = Clock.now(), mark = counters.segments.count
        defer {
            let end = Clock.now()
            let inner = counters.segments[mark...].filter { !ForwardStage.compute.contains($0.stage) }
            var from = start
            for hole in inner.sorted(by: { $0.start < $1.start }) {
                if hole.start > from { counters.segments.append(StageSegment(stage: stage, start: from, end: hole.start)) }
                from = max(from, hole.end)
            }
            if end > from { counters.segments.append(StageSegment(stage: stage, start: from, end: end)) }
        }
        return try body()
    }

    /// Records the segments `collectives` added since `mark` as `stage`.
    func recordCollectives(_ collectives: Collectives, since mark: Int, as stage: ForwardStage) {
        for s in collectives.segments[mark...] {
            counters.segments.append(StageSegment(stage: s.kind == .wait ? .wait : stage, start: s.start, end: s.end))
        }
    }

    /// o_proj, row-parallel, the forward's one collective: this rank's partial `[T, hidden]`,
    /// the allreduce (its wait and reduction recorded as stages), then the bias once.
    func outputProjection(into out: inout Matrix, tokens T: Int, collectives: Collectives) throws {
        guard out.rows == T, out.cols == config.hiddenSize else {
            throw ShapeError(op: "MLA output", out.shape, Shape(T, config.hiddenSize))
        }
        if mode == .invariant { return try outputProjectionInvariant(into: &out, tokens: T, collectives: collectives) }
        let attn = workspace.attn                                          // [T, H/tp·v]
        let kernel = try timed(.oProj) { try oProj.partial(attn, into: &out) }   // [T, hidden] partial, f32
        counters.record(kernel, for: oProj.name)
        try countProjection(T, oProj)
        let mark = collectives.segments.count
        try oProj.reduce(&out, collectives: collectives)                  // Σ over ranks, + bias once
        recordCollectives(collectives, since: mark, as: .allReduce)
        try guardStage(.oProj, out)
        stageHashes?.record(.oProj, out)
    }
}
