import MLA
import TensorParallel

/// Which forwards `bench` times.
public enum BenchPhase: String, CaseIterable, Codable, Sendable {
    case prefill, decode, both

    /// The phases to run, in order.
    public var phases: [BenchPhase] { self == .both ? [.prefill, .decode] : [self] }
}

/// One stage's time per timed forward.
public struct StageTiming: Codable, Sendable {
    public var stage: ForwardStage
    public var seconds: Samples
}

/// What one phase measured on one rank.
public struct BenchPhaseResult: Codable, Sendable {
    /// New tokens per forward (prefill: T; decode: one per sequence).
    public var tokensPerForward: Int
    public var sequences: Int
    /// Decode: cached tokens per sequence before the first and the last timed step.
    public var contextFirst: Int?
    public var contextLast: Int?

    /// Per forward: the whole forward and its parts. `compute` is the sum of the compute stages,
    /// each timed on its own (so compute + allreduce + wait falls short of the total only by the
    /// untimed glue between stages); `stages` holds every stage.
    public var totalSeconds: Samples
    public var computeSeconds: Samples
    public var allReduceSeconds: Samples
    public var allReduceWaitSeconds: Samples
    public var stages: [StageTiming]?
    /// CPU time of the calling thread per forward (BLAS runs on it with one thread; MPI's
    /// busy-wait counts too). Well below `totalSeconds` means the core was lent to other work.
    public var cpuSeconds: Samples

    /// FLOPs the last timed forward counted while executing, and the plan's count for it.
    public var flops: Int
    public var projectionFlops: Int
    public var attentionFlops: Int
    public var planFlops: Int
    /// Counted FLOPs over the median forward time.
    public var flopsPerSecond: Double

    /// Prefill: the reference product `x [m, k] · Wᵀ` on the layer's largest hidden-wide local
    /// weight `W [n, k]`, shape `[m, n, k]`, one right after each timed forward; its rate over the
    /// median; and the median over forwards of (forward's FLOP/s ÷ the following product's FLOP/s).
    /// f32: the product on the kernel the layer runs it on (`sgemmKernel`: OpenBLAS's sgemm, or
    /// oneDNN's f32 matmul where the kernel layer routes it there); bf16: oneDNN's bf16 matmul.
    public var sgemmShape: [Int]?
    public var sgemmWeightOrder: WeightOrder?
    /// Which weight the reference multiplies: the layer's own (nil), or one dequantized tile of an fp8 layer's.
    public var sgemmWeightTile: Bool?
    public var sgemmSeconds: Samples?
    public var sgemmFlopsPerSecond: Double?
    public var gemmEfficiency: Double?
    /// The kernel the reference product ran on.
    public var sgemmKernel: String?
    /// Which kernel ran each projection in the last timed forward, and the projection whose weight
    /// the reference product uses (its kernel is the one a bf16 target names when it is n/a).
    public var kernels: [ProjectionKernel]?
    public var referenceProjection: String?

    /// The forward's allreduce payload; a plain MPI_Allreduce of the same bytes right after each
    /// timed forward (the median of a few); the median over forwards of their ratio.
    public var allReduceBytes: Int
    public var rawAllReduceSeconds: Samples?
    public var allReduceRatio: Double?
    /// The same raw MPI_Allreduce right after reading 64 MiB (caches evicted, as in the forward,
    /// whose allreduce follows streaming the o_proj weight), and the forward's ratio to it.
    public var rawColdAllReduceSeconds: Samples?
    /// How the forward's allreduce was done.
    public var allReducePath: Collectives.AllReducePath?
    public var allReduceColdRatio: Double?

    /// Decode: weight bytes each step streams (every local weight once), per decoded token, and
    /// the rate over the median step; a memcpy right after each timed step, its bandwidth counting
    /// bytes read + written; the median over steps of (weight rate ÷ the following copy's rate).
    public var weightBytesPerStep: Int?
    public var weightBytesPerToken: Int?
    public var weightBytesPerSecond: Double?
    public var copySeconds: Samples?
    public var copyBytesPerSecond: Double?
    public var bandwidthEfficiency: Double?
    /// The same ratio over the rank's own busy time (the step less its wait for slower ranks at
    /// the barrier before the reduce): how fast this rank streamed, apart from load imbalance.
    public var busyBandwidthEfficiency: Double?
    /// Decode: the bytes of the latent cache this rank holds after the last step, and what it holds its tokens in.
    public var cacheBytes: Int?
    public var cacheDType: KVCacheDType?

    /// Memory around the timed forwards.
    public var memory: BenchMemory
}

/// A rank's memory for one phase (bytes).
public struct BenchMemory: Codable, Sendable {
    public var anonymousBytes: Int
    public var pssBytes: Int
    public var rssBytes: Int
    /// RSS before the timed forwards, and its peak during them (VmHWM after a reset).
    public var rssBeforeTimedBytes: Int
    public var peakDuringTimedBytes: Int
    /// Whether the kernel let the peak be reset (else the peak is since the process started).
    public var peakWasReset: Bool
    /// Weights (shard + replicated), activations and cache this phase needs, and
    /// the budget `1.1 × weights + activations + cache`.
    public var weightBytes: Int
    public var replicatedBytes: Int
    public var shardBytes: Int
    public var activationBytes: Int
    public var budgetBytes: Int
    /// The smallest local weight matrix: a forward must never allocate this much.
    public var smallestWeightBytes: Int
    /// Every weight of the unsharded layer (what a rank would hold if it held every shard).
    public var fullLayerBytes: Int
}

/// Everything one rank measured.
public struct BenchRankResult: Codable, Sendable {
    public var rank: Int
    public var blasThreads: Int
    public var weightBytes: Int
    /// Anonymous RSS after MPI started (the runtime's own), and after the weights were built.
    public var runtimeAnonymousBytes: Int
    public var loadedAnonymousBytes: Int
    public var prefill: BenchPhaseResult?
    public var decode: BenchPhaseResult?
    /// Under `--invariant`: the same phases of a default-mode layer, measured in the same run
    /// (before the invariant one, whose weights it never shares memory with).
    public var defaultMode: DefaultModeResult?

    public struct DefaultModeResult: Codable, Sendable {
        public var prefill: BenchPhaseResult?
        public var decode: BenchPhaseResult?
        public init(prefill: BenchPhaseResult?, decode: BenchPhaseResult?) {
            self.prefill = prefill
            self.decode = decode
        }
    }

    public init(rank: Int, blasThreads: Int, weightBytes: Int, runtimeAnonymousBytes: Int, loadedAnonymousBytes: Int) {
        self.rank = rank
        self.blasThreads = blasThreads
        self.weightBytes = weightBytes
        self.runtimeAnonymousBytes = runtimeAnonymousBytes
        self.loadedAnonymousBytes = loadedAnonymousBytes
    }
}
