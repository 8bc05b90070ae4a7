import Foundation
import MLA
import TensorCore
import TensorParallel
import Testing

/// The plan's FLOPs (`FlopModel`) against what the real forward counts while it executes.
@Suite struct PlanTests {
    let source = SeededWeights(seed: 11)

    func input(_ config: MLAConfig, tokens: Int) throws -> Matrix {
        try Matrix(rows: tokens, cols: config.hiddenSize,
                   values: SeededInit.fill(name: "x", seed: 11, rows: 0..<tokens, cols: 0..<config.hiddenSize,
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
            for gate in GateLayout.allCases where !(gate == .replicated && tp > 1 && c.useGatedAttn) {
                let rank = tp - 1
                let layer = try MLAAttention(config: c, shard: Shard(rank: rank, size: tp), gateLayout: gate, source: source)
                for lengths in Self.batches {
                    let batch = try Batch(sequenceLengths: lengths)
                    _ = try layer.forward(try input(c, tokens: batch.tokenCount), batch: batch, collectives: .local)
                    let plan = FlopModel.prefill(config: c, tp: tp, gate: gate, sequenceLengths: lengths)
                    #expect(layer.counters.projectionFlops == plan.projectionFlops,
                            "\(name) tp=\(tp) \(gate) \(lengths): projections \(layer.counters.projectionFlops) vs plan \(plan.projectionFlops)")
                    #expect(layer.counters.attentionFlops == plan.attentionFlops,
                            "\(name) tp=\(tp) \(gate) \(lengths): attention \(layer.counters.attentionFlops) vs plan \(plan.attentionFlops)")
                }
            }
        }
    }

    @Test func replicatedGateCostsTpTimesTheColumnGate() {
        let c = Presets.deepseekV3
        for tp in [2, 4, 8] {
            let col = FlopModel.prefill(config: c, tp: tp, gate: .column, sequenceLengths: [256]).stage("gate")!.flops
            let rep = FlopModel.prefill(config: c, tp: tp, gate: .replicatedSliced, sequenceLengths: [256]).stage("gate")!.flops
            #expect(rep == tp * col)
            #expect(col == 2 * 256 * (16384 / tp) * 7168)
        }
    }

    @Test func attentionFlopsFollowTheQueryBlocking() {
        let c = Presets.tiny
        // One block of 64 rows sees 64 keys; the second block (1 row) sees 65.
        let dq = c.qkHeadDim, v = c.vHeadDim, h = c.numAttentionHeads
        #expect(FlopModel.attentionFlops(config: c, heads: h, nq: 64, nk: 64) == h * (2 * 64 * 64 * dq + 2 * 64 * v * 64))
        #expect(FlopModel.attentionFlops(config: c, heads: h, nq: 65, nk: 65)
                == h * (2 * 64 * 64 * dq + 2 * 64 * v * 64 + 2 * 1 * 65 * dq + 2 * 1 * v * 65))
        // Decode: one query over context + 1 keys.
        #expect(FlopModel.attentionFlops(config: c, heads: h, nq: 1, nk: 101) == h * (2 * 101 * dq + 2 * v * 101))
    }

    @Test func kvCacheBytesPerTokenIsTheLatentPlusRope() {
        #expect(FlopModel.kvCacheBytesPerToken(config: Presets.deepseekV3) == (512 + 64) * 4)
    }
}
