import MLA
import TensorCore
import TensorParallel

/// Where a layout with sharded latent projections (`-latcol`) stops winning a decode step
/// against the same layout with them replicated, on one hardware model: by batch (sequences per
/// DP group; the weights it saves streaming are fixed, the all-gather grows with the batch and
/// adds a latency) and by the link's latency at the planned batch. Projected (`LayoutPlan.seconds`),
/// per layer, at the plan's context.
public struct LatentCrossover: Codable, Sendable {
    public var layout: String
    public var against: String
    public var hardware: String
    public var context: Int
    /// Decode-step seconds (compute + communication) of both, by batch: the drawn curves.
    public var batches: [Int]
    public var sharded: [Double]
    public var replicated: [Double]
    /// The smallest batch (of those up to `batches.last`, searched exactly) at which the sharded
    /// layout is no faster; nil when it wins at every batch searched.
    public var stopsWinningAtBatch: Int?
    /// At the planned batch: the step latency at which it stops winning (nil: at no latency, because
    /// it loses even with a free link, or because the link's latency does not enter).
    public var planBatch: Int
    public var breakEvenLatencySeconds: Double?
    public var assumedLatencySeconds: Double

    /// The sharded layout `layout` (latent `.column`) against its replicated twin on `hardware`,
    /// batches 1 …`maxBatch` per DP group, `context` tokens cached per sequence, at `bytesPerElement`.
    public init(config: MLAConfig, layout: ParallelLayout, context: Int, batch: Int, maxBatch: Int = 4096, bytesPerElement: Int,
                cacheDType: KVCacheDType, quantization: WeightQuantization?, hardware: Hardware) throws(CountOverflow) {
        var twin = layout
        twin.latent = .replicated
        self.layout = layout.description
        against = twin.description
        self.hardware = hardware.name
        self.context = context
        func step(_ l: ParallelLayout, _ b: Int, _ hw: Hardware) throws(CountOverflow) -> Double {
            let p = try LayoutPlan(config: config, layout: l, context: context, batch: b * l.dp, bytesPerElement: bytesPerElement,
                                   cacheDType: cacheDType, quantization: quantization)
            let s = p.seconds(p.decode, p.decodeCollectives, config: config, hardware: hw)
            return s.compute + s.communication
        }
        func loses(_ b: Int) throws(CountOverflow) -> Bool { try step(layout, b, hardware) >= step(twin, b, hardware) }
        batches = Array(sequence(first: 1) { $0 * 2 }.prefix { $0 <= maxBatch })
        sharded = []
        replicated = []
        for b in batches {
            sharded.append(try step(layout, b, hardware))
            replicated.append(try step(twin, b, hardware))
        }
        // Exactly: the first batch that loses, by bisection between the last winning power of two and the next.
        var firstLoss: Int?
        for i in batches.indices where firstLoss == nil && sharded[i] >= replicated[i] { firstLoss = i }
        if let i = firstLoss {
            var (lo, hi) = (i == 0 ? 0 : batches[i - 1], batches[i])
            while hi - lo > 1 {
                let mid = (lo + hi) / 2
                if try loses(mid) { hi = mid } else { lo = mid }
            }
            stopsWinningAtBatch = hi
        }
        // The difference is linear in the latency: sharded − replicated = a + b·latency, every
        // collective's step at that latency (the latent all-gather's own link included, where
        // the hardware has one; its assumed latency is the one shown).
        planBatch = max(1, (batch + layout.dp - 1) / layout.dp)
        assumedLatencySeconds = hardware.allGatherLink?.stepLatencySeconds ?? hardware.linkLatencySeconds
        let free = hardware.withStepLatency(0), slow = hardware.withStepLatency(1e-6)
        let a = try step(layout, planBatch, free) - step(twin, planBatch, free)
        let perSecond = (try step(layout, planBatch, slow) - step(twin, planBatch, slow) - a) / 1e-6
        breakEvenLatencySeconds = a < 0 && perSecond > 0 ? -a / perSecond : nil
    }
}
