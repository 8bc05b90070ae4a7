import Foundation
import MLA
import Planner
import SwiftMPI
import TensorCore
import TensorParallel

/// `bench`'s measuring engine: times forwards on every rank and takes, right after each timed
/// forward, the references it is held against (paired samples, so slow drifts of a shared
/// machine cancel in the ratios).
public struct BenchEngine {
    public let world: Communicator
    public let config: MLAConfig
    public let attention: MLAAttention
    public let collectives: Collectives
    public let gate: GateLayout
    public let seed: UInt64

    public init(world: Communicator, config: MLAConfig, attention: MLAAttention, collectives: Collectives,
                gate: GateLayout, seed: UInt64) {
        self.world = world
        self.config = config
        self.attention = attention
        self.collectives = collectives
        self.gate = gate
        self.seed = seed
    }

    var tp: Int { world.size }

    /// The references taken right after one timed forward.
    struct Reference {
        /// The sgemm (prefill) or memcpy (decode) right after the forward.
        var kernel: Double
        /// A raw MPI_Allreduce of the forward's bytes: median of a few back to back, and one after eviction.
        var rawHot: Double
        var rawCold: Double
    }

    /// Per timed forward: its wall time, counters and CPU time, and the references after it.
    struct Timed {
        var total: [Double] = [], compute: [Double] = [], reduce: [Double] = [], wait: [Double] = [], cpu: [Double] = []
        var stages: [ForwardStage: [Double]] = [:]
        var references: [Reference] = []

        func samples(_ path: KeyPath<Reference, Double>) -> Samples { Samples(references.map { $0[keyPath: path] }) }
    }

    /// `warmup` untimed forwards; one more to read memory around (the peak reset before it); then
    /// `repeats` timed forwards, each after a barrier and each followed by `reference()`.
    func time(warmup: Int, repeats: Int, activations: () -> Int, _ forward: () throws -> Void,
              reference: () throws -> Reference) throws -> (Timed, BenchMemory) {
        for _ in 0..<warmup {
            try world.barrier()
            try forward()
        }
        try world.barrier()
        let rssBefore = ProcessMemory.current().rssBytes
        let reset = ResidentPeak.reset()
        try forward()
        let memory = memory(rssBefore: rssBefore, peakReset: reset, activations: activations())
        var t = Timed()
        for _ in 0..<repeats {
            collectives.resetCounters()
            try world.barrier()
            let cpu0 = Clock.threadCPU()
            try forward()
            t.cpu.append(Clock.threadCPU() - cpu0)
            let counters = attention.counters
            t.total.append(counters.seconds)
            t.reduce.append(counters.seconds(in: .allReduce))
            t.wait.append(counters.seconds(in: .wait))
            t.compute.append(counters.computeSeconds)
            for stage in ForwardStage.allCases { t.stages[stage, default: []].append(counters.seconds(in: stage)) }
            t.references.append(try reference())
        }
        return (t, memory)
    }

    func memory(rssBefore: Int, peakReset: Bool, activations: Int) -> BenchMemory {
        let now = ProcessMemory.current()
        let plan = ShardingPlan(config: config, tp: tp, gate: gate, precision: attention.precision, quantization: attention.storage.quantization,
                                latent: attention.latentProjection)
        let full = ShardingPlan(config: config, tp: 1, gate: .column, precision: attention.precision, quantization: attention.storage.quantization)
        let smallest = plan.weights.filter { $0.localShape.count == 2 }.map(\.bytesPerRank).min() ?? 0
        let weights = attention.weightBytes
        return BenchMemory(anonymousBytes: now.anonymousBytes, pssBytes: now.pssBytes, rssBytes: now.rssBytes,
                           rssBeforeTimedBytes: rssBefore, peakDuringTimedBytes: ResidentPeak.peakBytes(), peakWasReset: peakReset,
                           weightBytes: weights, replicatedBytes: plan.replicatedBytes, shardBytes: plan.shardedBytes,
                           activationBytes: activations, budgetBytes: Int(1.1 * Double(weights)) + activations,
                           smallestWeightBytes: smallest, fullLayerBytes: full.bytesPerRank)
    }

    /// The result fields every phase fills the same way.
    func result(_ t: Timed, tokensPerForward: Int, sequences: Int, planFlops: Int, allReduceBytes: Int,
                memory: BenchMemory) -> BenchPhaseResult {
        let counters = attention.counters
        let total = Samples(t.total)
        var r = BenchPhaseResult(
            tokensPerForward: tokensPerForward, sequences: sequences, totalSeconds: total, computeSeconds: Samples(t.compute),
            allReduceSeconds: Samples(t.reduce), allReduceWaitSeconds: Samples(t.wait),
            stages: ForwardStage.allCases.compactMap { s in t.stages[s].map { StageTiming(stage: s, seconds: Samples($0)) } },
            cpuSeconds: Samples(t.cpu), flops: counters.totalFlops, projectionFlops: counters.projectionFlops,
            attentionFlops: counters.attentionFlops, planFlops: planFlops,
            flopsPerSecond: Double(counters.totalFlops) / max(total.median, 1e-12), allReduceBytes: allReduceBytes, memory: memory)
        if tp > 1 {
            let hot = t.samples(\.rawHot), cold = t.samples(\.rawCold)
            r.rawAllReduceSeconds = hot
            r.rawColdAllReduceSeconds = cold
            r.allReduceRatio = r.allReduceSeconds.pairedRatio(to: hot)
            r.allReduceColdRatio = r.allReduceSeconds.pairedRatio(to: cold)
            r.allReducePath = collectives.lastPath
        }
        return r
    }

    /// A raw allreduce of the forward's bytes: the median of `repeats` back to back, and one after eviction.
    func rawAllReduce(_ probe: Probe, bytes: Int, repeats: Int) throws -> (hot: Double, cold: Double) {
        guard tp > 1 else { return (0, 0) }
        return (try probe.allReduce(bytes: bytes, repeats: repeats).median, try probe.allReduceAfterEviction(bytes: bytes))
    }
}

extension BenchEngine {
    /// The timed layer's prefill of `tokens` tokens against the unsharded forward (`TPCheck`),
    /// after the timing so that it never touches the measurements. Skipped unless `enabled`.
    public func check(tokens T: Int, enabled: Bool, source: () throws -> WeightSource) throws -> TPCheck.Verdict {
        let x = try seededInput(tokens: T, hidden: config.hiddenSize, seed: seed)     // [T, hidden]
        let batch = try Batch(sequenceLengths: [T])
        let out = enabled ? try attention.forward(x, batch: batch, collectives: collectives) : Matrix(rows: 0, cols: 0)
        return try TPCheck.verify(out, world: world, enabled: enabled, precision: attention.precision) {
            try TPCheck.reference($0, run: attention.storage, config: config, layer: 0, source: try source(), x: x, batch: batch)
        }
    }
}
