import MLA
import SwiftMPI
import TensorCore
import TensorParallel

/// The sweep's step: repeated forwards timed per rank and per stage on one clock, gathered to
/// every rank as typed values.
public enum StepTimer {
    /// What to time: a prefill of `tokens` tokens, or a decode step after `context` cached ones.
    public enum Work: Sendable {
        case prefill(tokens: Int)
        case decode(context: Int, path: DecodePath)
    }

    /// One warm-up (it sizes the workspace), then `repeats` forwards, each after a barrier. A
    /// decode caches its context as `cacheDType` (nil: the layer's activation precision).
    public static func time(_ work: Work, layer: MLAAttention, collectives: Collectives, world: Communicator,
                            seed: UInt64, model: String, repeats: Int, cacheDType: KVCacheDType? = nil) throws -> StepResult {
        let config = layer.config, hidden = config.hiddenSize
        let forward: () throws -> Void, cacheDType = cacheDType ?? KVCacheDType(activations: layer.precision)
        switch work {
        case let .decode(context, path):
            let cache = KVCache(config: config, sequences: 1, dtype: cacheDType)
            _ = try layer.prefill(try seededInput(tokens: context, hidden: hidden, seed: seed),
                                  batch: try Batch(sequenceLengths: [context]), cache: cache, collectives: collectives)
            let x = try seededInput(tokens: 1, hidden: hidden, seed: seed &+ 1)      // [1, hidden]
            forward = { _ = try layer.decode(x, cache: cache, path: path, collectives: collectives) }
        case let .prefill(tokens):
            let x = try seededInput(tokens: tokens, hidden: hidden, seed: seed)      // [T, hidden]
            let batch = try Batch(sequenceLengths: [tokens])
            var out = Matrix(rows: tokens, cols: hidden)
            forward = { try layer.forward(x, batch: batch, collectives: collectives, into: &out) }
        }
        try forward()
        var forwards: [RankSteps.Forward] = []
        for _ in 0..<repeats {
            collectives.resetCounters()
            try world.barrier()
            let start = Clock.now()
            try forward()
            forwards.append(RankSteps.Forward(start: start, end: Clock.now(), segments: layer.counters.segments))
        }
        let mine = RankSteps(rank: world.rank, anonymousBytes: ProcessMemory.current().anonymousBytes,
                             weightBytes: layer.weightBytes, flops: layer.counters.totalFlops, forwards: forwards)
        let (tokens, context, path): (Int, Int?, DecodePath?) = {
            switch work {
            case let .prefill(t): return (t, nil, nil)
            case let .decode(c, p): return (1, c, p)
            }
        }()
        var result = StepResult(model: model, tp: world.size, gate: layer.gateLayout, tokens: tokens, context: context, decode: path,
                                ranks: try world.allGather(value: mine))
        result.cacheDType = context == nil ? nil : cacheDType
        return result
    }
}
