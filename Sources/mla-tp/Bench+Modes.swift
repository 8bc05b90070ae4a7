import Measure
import MLA
import SwiftMPI
import TensorCore
import TensorParallel

/// `bench`'s timed phases of one layer, and under `--invariant` the default mode's baseline.
extension Bench {
    /// The default mode's phases, measured before the invariant layer is built, on a layer dropped
    /// (and its freed heap pages returned) before that: `bench --invariant`'s cost reference.
    func defaultModeBaseline(shard: Shard, world: Communicator, config: MLAConfig) throws -> BenchRankResult.DefaultModeResult {
        let phases = try {
            let plain = try MLAAttention(config: config, shard: shard, gateLayout: model.gate, source: try model.weightSource(for: config),
                                         storage: model.storage, mode: .default)
            return try measure(plain, world: world, config: config)
        }()
        _ = HeapPages.returnFreed()
        return BenchRankResult.DefaultModeResult(prefill: phases.prefill, decode: phases.decode)
    }

    /// Every asked phase of `attention` on its own collectives (bench's barrier before each reduce).
    func measure(_ attention: MLAAttention, world: Communicator, config: MLAConfig) throws -> (prefill: BenchPhaseResult?, decode: BenchPhaseResult?) {
        let collectives = reduce.choice.collectives(world, dtype: model.dtype, mode: attention.mode)
        collectives.separateWait = true
        let engine = BenchEngine(world: world, config: config, attention: attention, collectives: collectives, gate: model.gate, seed: model.seed)
        var result: (prefill: BenchPhaseResult?, decode: BenchPhaseResult?) = (nil, nil)
        for p in phase.phases {
            if p == .prefill { result.prefill = try engine.prefill(tokens: tokens, warmup: warmup, repeats: repeats) }
            if p == .decode {
                result.decode = try engine.decode(context: tokens, sequences: batch, path: decode, cacheDType: model.choice.kvCacheDType, warmup: warmup,
                                                  repeats: repeats, copyBytes: copyMib << 20)
            }
        }
        return result
    }
}
