import Foundation
import MLA
import Planner
import TensorCore
import TensorParallel
import Testing

/// The plan's FLOPs (`FlopModel`) against what the real forward counts while it executes.
@Suite struct PlanTests {
    let source = SeededWeights(seed: 11)

    func input(_ config: MLAConfig, tokens: Int) throws -> Matrix {
        try Matrix(rows: tokens, cols: config.hiddenSize,
                   values: try SeededInit.fill(name: "x", seed: 11, rows: 0..<tokens, cols: 0..<config.hiddenSize,
                                           globalCols: config.hiddenSize, std: 1))
    }

    /// Configs that change which GEMMs run: LoRA q or q_proj, gated or not, and a small
    /// DeepSeek-V2-Lite-shaped layer (q_proj, 16 heads of the real head dims, narrower hidden).
    static let configs: [(String, MLAConfig)] = {
        var noLora = Presets.tiny
        noLora.qLoraRank = nil
        var ungated = Presets.tiny
        ungated.useGatedAttn = false
        var lite = Presets.deepseekV2Lite
        lite.hiddenSize = 256
        lite.kvLoraRank = 64
        return [("tiny", Presets.tiny), ("q_proj", noLora), ("ungated", ungated), ("v2-lite-heads", lite)]
    }()

    /// Batches on both sides of the 64-row query block, several sequences, an empty one.
    static let batches: [[Int]] = [[16], [7, 1, 12], [64], [65], [130, 3], [0, 5], []]

    @Test(arguments: configs.indices)
    func prefillCountersEqualThePlanExactly(index: Int) throws {
        let (name, c) = Self.configs[index]
        for tp in [1, 2, 4, 8] where c.numAttentionHeads % tp == 0 {
            for gate in GateLayout.separate where !(gate == .replicated && tp > 1 && c.useGatedAttn) {
                let rank = tp - 1
                let layer = try MLAAttention(config: c, shard: Shard(rank: rank, size: tp), gateLayout: gate, source: source)
                for lengths in Self.batches {
                    let batch = try Batch(sequenceLengths: lengths)
                    _ = try layer.forward(try input(c, tokens: batch.tokenCount), batch: batch, collectives: .local)
                    let plan = try FlopModel.prefill(config: c, tp: tp, gate: gate, sequenceLengths: lengths)
                    #expect(layer.counters.projectionFlops == plan.projectionFlops,
                            "\(name) tp=\(tp) \(gate) \(lengths): projections \(layer.counters.projectionFlops) vs plan \(plan.projectionFlops)")
                    #expect(layer.counters.attentionFlops == plan.attentionFlops,
                            "\(name) tp=\(tp) \(gate) \(lengths): attention \(layer.counters.attentionFlops) vs plan \(plan.attentionFlops)")
                }
            }
        }
    }

    /// Decode steps over a cache of uneven contexts (including one that crosses the 64-row
    /// block of a naive prefill), for both decode paths, against the executed counters.
    @Test(arguments: configs.indices, DecodePath.allCases)
    func decodeCountersEqualThePlanExactly(index: Int, path: DecodePath) throws {
        let (name, c) = Self.configs[index]
        for tp in [1, 2, 8] where c.numAttentionHeads % tp == 0 {
            for gate in [GateLayout.column, .replicatedSliced] {
                let layer = try MLAAttention(config: c, shard: Shard(rank: 0, size: tp), gateLayout: gate, source: source)
                let contexts = [5, 70, 1]
                let cache = KVCache(config: c, sequences: contexts.count)
                let prefill = try Batch(sequenceLengths: contexts)
                _ = try layer.prefill(try input(c, tokens: prefill.tokenCount), batch: prefill, cache: cache, collectives: .local)
                var lengths = contexts
                for _ in 0..<2 {                       // two steps: the context grows by one each
                    _ = try layer.decode(try input(c, tokens: contexts.count), cache: cache, path: path, collectives: .local)
                    let plan = try FlopModel.decode(config: c, tp: tp, gate: gate, contexts: lengths, path: path)
                    #expect(layer.counters.projectionFlops == plan.projectionFlops,
                            "\(name) tp=\(tp) \(gate) \(path) \(lengths): projections \(layer.counters.projectionFlops) vs plan \(plan.projectionFlops)")
                    #expect(layer.counters.attentionFlops == plan.attentionFlops,
                            "\(name) tp=\(tp) \(gate) \(path) \(lengths): attention \(layer.counters.attentionFlops) vs plan \(plan.attentionFlops)")
                    lengths = lengths.map { $0 + 1 }
                }
            }
        }
    }

    /// A cached prefill (the serving path, which expands the new tokens from the cache) counts
    /// what the plain forward counts.
    @Test func servingPrefillCountsWhatThePlainForwardCounts() throws {
        let c = Presets.tiny
        let layer = try MLAAttention(config: c, shard: Shard(rank: 1, size: 4), source: source)
        let batch = try Batch(sequenceLengths: [70, 3])
        _ = try layer.prefill(try input(c, tokens: batch.tokenCount), batch: batch, cache: KVCache(config: c, sequences: 2), collectives: .local)
        let plan = try FlopModel.prefill(config: c, tp: 4, gate: .column, sequenceLengths: [70, 3])
        #expect(layer.counters.projectionFlops == plan.projectionFlops && layer.counters.attentionFlops == plan.attentionFlops)
    }

    /// Whole serving passes (chunked prefill, mixed steps, decode) on both paths against the
    /// executed counters: `FlopModel.serving` follows the schedule step by step.
    @Test(arguments: DecodePath.allCases)
    func servingPassesCountWhatThePlanCounts(path: DecodePath) throws {
        for (index, lengths, decodeSteps, chunk) in [(0, [7, 1, 12], 3, nil), (1, [70, 5], 2, 30), (2, [1, 48], 1, 40), (3, [9], 4, 2)] as [(Int, [Int], Int, Int?)] {
            let (name, c) = Self.configs[index]
            for tp in [1, 2] {
                let layer = try MLAAttention(config: c, shard: Shard(rank: tp - 1, size: tp), source: source)
                let batch = try Batch(sequenceLengths: lengths)
                let schedule = try ServingSchedule(batch: batch, decodeSteps: decodeSteps, prefillChunk: chunk)
                _ = try layer.serve(try input(c, tokens: batch.tokenCount), batch: batch, schedule: schedule, decode: path, collectives: .local)
                let plan = try FlopModel.serving(config: c, tp: tp, gate: .column, schedule: schedule, path: path, sequences: lengths.count)
                #expect(layer.counters.projectionFlops == plan.projectionFlops && layer.counters.attentionFlops == plan.attentionFlops,
                        "\(name) tp=\(tp) \(path) \(lengths) D=\(decodeSteps) C=\(String(describing: chunk)): counted \(layer.counters.projectionFlops) + \(layer.counters.attentionFlops), plan \(plan.projectionFlops) + \(plan.attentionFlops)")
            }
        }
    }

    @Test func replicatedGateCostsTpTimesTheColumnGate() throws {
        let c = Presets.deepseekV3
        for tp in [2, 4, 8] {
            let col = try FlopModel.prefill(config: c, tp: tp, gate: .column, sequenceLengths: [256]).stage("gate")!.flops
            let rep = try FlopModel.prefill(config: c, tp: tp, gate: .replicatedSliced, sequenceLengths: [256]).stage("gate")!.flops
            #expect(rep == tp * col)
            #expect(col == 2 * 256 * (16384 / tp) * 7168)
        }
    }

    @Test func attentionFlopsFollowTheQueryBlocking() throws {
        let c = Presets.tiny
        // One block of 64 rows sees 64 keys; the second block (1 row) sees 65.
        let dq = c.qkHeadDim, v = c.vHeadDim, h = c.numAttentionHeads
        #expect(try FlopModel.attentionFlops(config: c, heads: h, nq: 64, nk: 64) == h * (2 * 64 * 64 * dq + 2 * 64 * v * 64))
        #expect(try FlopModel.attentionFlops(config: c, heads: h, nq: 65, nk: 65)
                == h * (2 * 64 * 64 * dq + 2 * 64 * v * 64 + 2 * 1 * 65 * dq + 2 * 1 * v * 65))
        // Decode: one query over context + 1 keys.
        #expect(try FlopModel.attentionFlops(config: c, heads: h, nq: 1, nk: 101) == h * (2 * 101 * dq + 2 * v * 101))
    }

    /// The layouts plan counts the cache in the dtype asked for, and its capacity in every one.
    @Test func layoutPlanCountsTheCacheInItsDTypeAndTheCapacityOfEach() throws {
        let layout = try ParallelLayout(name: "tp8", ranks: 8), memory = 10_000_000_000
        for (dtype, bytes) in [(KVCacheDType.f32, 2304), (.bf16, 1152), (.fp8, 656)] {
            let p = try LayoutPlan(config: Presets.deepseekV3, layout: layout, context: 1000, batch: 8, cacheDType: dtype, memoryPerRank: memory)
            #expect(p.kvBytesPerToken == Double(bytes) && p.kvBytesPerRank == 8 * 1000 * bytes, "\(dtype)")
            let free = memory - p.weightBytesPerRank
            #expect(p.capacity?.map(\.maxCachedTokensPerRank) == [free / 2304, free / 1152, free / 656], "\(dtype)")
            #expect(p.maxCachedTokensPerRank == free / bytes, "\(dtype)")
        }
    }
}
