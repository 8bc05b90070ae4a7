import Foundation
import MLA
import SwiftMPI
import TensorCore
import TensorParallel

/// The rate probe: this machine's rates with every rank busy at once, as in a forward, for each
/// kernel a stage runs on (GEMMs, attention kernels, weight streaming, the reduction): the inputs
/// of `plan --hardware cpu-measured` and of the sweep's projection.
public enum RateProbe {
    /// Samples of each timed measurement; the best counts (on a shared machine most samples are
    /// slowed by other work, so more of them give a better chance of a clean one).
    public static let repeats = 15

    /// The sgemm's shape `[M, N, K]` and the large allreduce's bytes.
    public struct Shape: Codable, Sendable, Equatable {
        public var m: Int, n: Int, k: Int
        public init(m: Int, n: Int, k: Int) { (self.m, self.n, self.k) = (m, n, k) }
        /// The shape for a forward of `tokens` tokens: x [T, hidden] · W with W [hidden, min(hidden, 4096)]
        /// (the hidden-wide projections dominate the FLOPs).
        public static func forward(tokens: Int, hidden: Int) -> Shape { Shape(m: max(tokens, 1), n: min(hidden, 4096), k: hidden) }
        public var dims: [Int] { [m, n, k] }
    }

    /// What each rank measured while all ran together.
    struct RankRates: Codable {
        var sgemm: Double, copy: Double, bf16: Double, attention: Double?, fixedOrder: Double?, stream: Double?, absorbed: Double?
    }

    /// The rates, each rank busy at once. Besides the sgemm, the bf16 product, memcpy and the raw
    /// MPI allreduce, each kernel a run will use, when given: `attention`, the expanded attention
    /// kernel; `absorbed`, the absorbed decode after the caches are evicted; `stream`, the decode's
    /// weight streaming on the run's weight format; `fixedOrder`, the invariant mode's product on
    /// weights in that precision; `reduction`, the run's own allreduce path at both sizes, and
    /// with `exchanges` its all-gather and reduce-scatter (for layouts with DCP or a latent gather).
    public static func measure(_ world: Communicator, shape: Shape = Shape(m: 1024, n: 1024, k: 1024),
                               allReduceBytes: Int = 4 << 20, attention: AttentionProbe? = nil,
                               fixedOrder: Precision? = nil, reduction: Collectives? = nil,
                               stream: StreamProbe? = nil, absorbed: AbsorbedProbe? = nil, exchanges timeExchanges: Bool = false) throws -> MeasuredRates {
        let p = world.size
        let probe = Probe(world: world)
        // sgemm x [M, K] · W, W [K, N], in the [in, out] order the layer keeps its projections in.
        let gemm = GemmProbe(m: shape.m, n: shape.n, k: shape.k)
        let sgemm = perSecond(try gemm.flops, try probe.sgemm(gemm, repeats: repeats).min)
        // The same product with a bf16 weight, on whatever kernel a bf16 layer's projection takes here.
        let bf16 = GemmProbe(x: gemm.x, weight: .bf16(BF16Matrix(rows: shape.n, cols: shape.k, repeating: BFloat16(0.25))),
                             order: BF16Storage.forwardOrder)
        let bf16Rate = perSecond(try bf16.flops, try probe.sgemm(bf16, repeats: repeats).min)
        // The invariant mode keeps its weights [in, out] (the NN form) in the layer's precision.
        let fixedOrderRate = try fixedOrder.map { p in
            var fixed = p == .bf16 ? GemmProbe(x: gemm.x, weight: .bf16(BF16Matrix(rows: shape.k, cols: shape.n, repeating: BFloat16(0.25))),
                                               order: .inOut) : gemm
            fixed.fixedOrder = true
            return perSecond(try fixed.flops, try probe.sgemm(fixed, repeats: repeats).min)
        }
        // After the caches are evicted, as a step reaches its weights: a small model's whole
        // layer fits in the last-level cache, and back to back it would stream from there.
        let streamRate = try stream.map { st in
            let y = UnsafeMutablePointer<Float>.allocate(capacity: max(st.outFeatures, 1))
            defer { y.deallocate() }
            st.run(into: y)                                                   // untimed: pages in, kernel chosen
            return perSecond(st.weightBytes, try (0..<repeats).map { _ in try probe.afterEviction { st.run(into: y) } }.min() ?? 0)
        }
        // The absorbed decode after 64 MiB of other reads, as a step reaches it after streaming
        // the projections' weights: its slice of kv_b_proj comes from memory, not the caches.
        let absorbedRate = try absorbed.map { a in
            a.run()
            return perSecond(a.bytes, try (0..<repeats).map { _ in try probe.afterEviction { a.run() } }.min() ?? 0)
        }
        let attentionRate = try attention.map { a in perSecond(a.flops, try probe.samples(repeats) { a.run() }.min) }
        // memcpy of 64 MiB, read + written counted.
        let copyBytes = 64 << 20
        let copy = perSecond(2 * copyBytes, try probe.copy(bytes: copyBytes, repeats: repeats).min)
        // Allreduce: a small one (4 KiB, 5 × 50 calls back to back) for the per-step latency, a
        // large one (the forward's payload) for the bandwidth.
        let small = 4096, large = max(allReduceBytes, 8192)
        var (linkRate, stepLatency) = (0.0, 0.0)
        if p > 1 {
            (linkRate, stepLatency) = link(small: (try probe.allReduce(bytes: small, repeats: 5, batch: 50).min, small),
                                           large: (try probe.allReduce(bytes: large, repeats: repeats).min, large), ranks: p)
        }
        // The same two sizes through the reduction the run makes (`reduction`: its path, the
        // shared-memory window or MPI, in its precision): the rate and latency its allreduces get.
        var path: (rate: Double, latency: Double, large: String, small: String)?
        if p > 1, let reduction {
            let (smallT, smallPath) = try timeReduction(reduction, bytes: small, probe: probe, repeats: 5, batch: 50)
            let (largeT, largePath) = try timeReduction(reduction, bytes: large, probe: probe, repeats: repeats, batch: 1)
            let element = reduction.reducePrecision.bytesPerElement
            let l = link(small: (smallT, small / 4 * element), large: (largeT, large / 4 * element), ranks: p)
            path = (l.rate, l.latency, largePath, smallPath)
        }
        // DCP's exchanges (and the sharded latent's gather) through the same collectives: an
        // all-gather and a reduce-scatter at both sizes, each its own link.
        var exchanges: (gather: (rate: Double, latency: Double), scatter: (rate: Double, latency: Double))?
        if p > 1, timeExchanges, let reduction {
            exchanges = (try exchangeLink(.gather, reduction, small: small, large: large, probe: probe),
                         try exchangeLink(.scatter, reduction, small: small, large: large, probe: probe))
        }
        // The slowest rank's compute rates (they ran concurrently); the collective is shared.
        let all = try world.allGather(value: RankRates(sgemm: sgemm, copy: copy, bf16: bf16Rate, attention: attentionRate,
                                                       fixedOrder: fixedOrderRate, stream: streamRate, absorbed: absorbedRate))
        var rates = MeasuredRates(sgemmFlopsPerSecond: all.map(\.sgemm).min() ?? sgemm, copyBytesPerSecond: all.map(\.copy).min() ?? copy,
                                  allReduceBytesPerSecond: linkRate, allReduceStepLatencySeconds: stepLatency,
                                  allReduceLargeBytes: large, allReduceSmallBytes: small, sgemmShape: shape.dims,
                                  ranks: p, cores: ProcessInfo.processInfo.activeProcessorCount)
        rates.bf16GemmFlopsPerSecond = all.map(\.bf16).min() ?? bf16Rate
        rates.bf16GemmKernel = probe.kernel(of: bf16).description
        rates.sgemmKernel = probe.kernel(of: gemm).description
        if let path, let reduction {
            (rates.reductionBytesPerSecond, rates.reductionStepLatencySeconds) = (path.rate, path.latency)
            rates.reductionPrecision = reduction.reducePrecision
            rates.reductionPaths = [path.small, path.large]
        }
        if let exchanges {
            (rates.allGatherBytesPerSecond, rates.allGatherStepLatencySeconds) = exchanges.gather
            (rates.reduceScatterBytesPerSecond, rates.reduceScatterStepLatencySeconds) = exchanges.scatter
        }
        if let absorbed {
            rates.absorbedBytesPerSecond = all.compactMap(\.absorbed).min()
            rates.absorbedShape = [absorbed.heads, absorbed.cached]
        }
        if let stream {
            rates.decodeStreamBytesPerSecond = all.compactMap(\.stream).min()
            rates.decodeStreamFormat = stream.format
            rates.decodeStreamShapes = stream.shapes
        }
        if let fixedOrder {
            rates.fixedOrderGemmFlopsPerSecond = all.compactMap(\.fixedOrder).min()
            rates.fixedOrderPrecision = fixedOrder
        }
        if let attention {
            rates.attentionFlopsPerSecond = all.compactMap(\.attention).min()
            rates.attentionShape = [attention.heads, attention.tokens]
        }
        return rates
    }

    /// `amount` (FLOPs or bytes) over `seconds`, the best sample.
    static func perSecond(_ amount: Int, _ seconds: Double) -> Double { Double(amount) / max(seconds, 1e-12) }

    /// One timing of a collective: its seconds, and the bytes a rank moved in it.
    typealias Timing = (seconds: Double, bytes: Double)

    /// A ring collective's link from two timings of it at two sizes, both fitted exactly to
    /// `t = steps · latency + bytes / rate`: the rate from what the larger size added in time and
    /// bytes, the latency per step from what is left of the small timing. (Taking the whole small
    /// timing as latency overstates the rate whenever the large size is only a few times the small
    /// one.) Timings that do not grow with the bytes, noise on a busy machine, fall back to that:
    /// the small timing all latency. `LayoutPlan` and `Projection` price collectives with these two terms.
    static func ring(small: Timing, large: Timing, steps: Int) -> (rate: Double, latency: Double) {
        let n = Double(steps), dt = large.seconds - small.seconds, db = large.bytes - small.bytes
        guard dt > 0, db > 0 else {
            let latency = small.seconds / n
            return (large.bytes / max(large.seconds - n * latency, 1e-9), latency)
        }
        let rate = db / dt, left = small.seconds - small.bytes / rate
        // A negative intercept: the small one was faster than the line allows; no latency, and the large one's rate.
        return left >= 0 ? (rate, left / n) : (large.bytes / large.seconds, 0)
    }

    /// A ring allreduce's link over `ranks` ranks, timed at two payloads: `2(p−1)` steps, a rank
    /// sending `2(p−1)/p` of the payload.
    static func link(small: (seconds: Double, payload: Int), large: (seconds: Double, payload: Int), ranks p: Int) -> (rate: Double, latency: Double) {
        let share = Double(2 * (p - 1)) / Double(p)
        return ring(small: (small.seconds, share * Double(small.payload)), large: (large.seconds, share * Double(large.payload)), steps: 2 * (p - 1))
    }

    /// An all-gather's or a reduce-scatter's link: `p − 1` steps, a rank receiving the bytes of
    /// each timing (the other p − 1 blocks of an all-gather, (p − 1)/p of a reduce-scatter's buffer).
    static func steps(small: Timing, large: Timing, ranks p: Int) -> (rate: Double, latency: Double) {
        ring(small: small, large: large, steps: p - 1)
    }

    /// An all-gather (`.gather`: each rank's block of `bytes / p`) or a reduce-scatter
    /// (`.scatter`: a buffer of `bytes`) through `collectives`, timed at the small size (5 × 50
    /// back to back) and the large one (best of `repeats`), as a link.
    static func exchangeLink(_ kind: Collectives.SegmentKind, _ collectives: Collectives, small: Int, large: Int,
                             probe: Probe) throws -> (rate: Double, latency: Double) {
        let p = probe.world.size
        func time(_ bytes: Int, repeats: Int, batch: Int) throws -> Double {
            let block = max(bytes / 4 / p, 1)
            let whole = UnsafeMutableBufferPointer<Float>.allocate(capacity: block * p), part = UnsafeMutableBufferPointer<Float>.allocate(capacity: block)
            defer { whole.deallocate(); part.deallocate() }
            whole.initialize(repeating: 1); part.initialize(repeating: 1)
            let body = {
                if kind == .gather { try collectives.allGather(UnsafeBufferPointer(part), into: whole) }
                else { try collectives.reduceScatter(UnsafeBufferPointer(whole), into: part) }
            }
            try body()                                                        // untimed: pages in
            defer { collectives.resetCounters() }
            return try probe.samples(repeats) { for _ in 0..<batch { try body() } }.min / Double(batch)
        }
        // Either way a rank receives p − 1 blocks: the others' (gather), or its block's p − 1 partials (scatter).
        let received = { (bytes: Int) in Double((p - 1) * max(bytes / 4 / p, 1) * 4) }
        return steps(small: (try time(small, repeats: 5, batch: 50), received(small)),
                     large: (try time(large, repeats: repeats, batch: 1), received(large)), ranks: p)
    }

    /// The best of `repeats` samples of `batch` back-to-back reductions of `bytes / 4` values
    /// through `collectives`, per reduction, and the path it took.
    static func timeReduction(_ collectives: Collectives, bytes: Int, probe: Probe, repeats: Int, batch: Int) throws -> (Double, String) {
        var m = Matrix(rows: 1, cols: max(bytes / 4, 1), repeating: 0)
        try collectives.allReduceSum(&m)                                      // untimed: sets up the window
        let t = try probe.samples(repeats) { for _ in 0..<batch { try collectives.allReduceSum(&m) } }.min / Double(batch)
        let path = collectives.lastPath.rawValue
        collectives.resetCounters()
        return (t, path)
    }
}
