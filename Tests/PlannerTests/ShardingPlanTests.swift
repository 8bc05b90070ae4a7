@testable import MLA
import Planner
import TensorCore
import TensorParallel
import Testing

/// The sharding plan's bytes against what each rank's layer really holds, and the figures the
/// plan is there to show.
@Suite struct ShardingPlanTests {
    let source = SeededWeights(seed: 5)

    @Test func planBytesMatchWhatTheLayerHolds() throws {
        for tp in [1, 2, 4, 8] {
            for gate in GateLayout.separate where !(gate == .replicated && tp > 1) {
                let layer = try MLAAttention(config: Presets.tiny, shard: Shard(rank: tp - 1, size: tp), gateLayout: gate, source: source)
                #expect(ShardingPlan(config: Presets.tiny, tp: tp, gate: gate).bytesPerRank == layer.weightBytes)
            }
        }
    }

    /// Every gate form in bf16: the plan's bytes are the bf16 layer's, half the f32 plan's.
    @Test(arguments: [("element", "separate"), ("head", "separate"), ("element", "packed"), ("head", "packed")], [1, 2, 4])
    func bf16PlanBytesMatchWhatTheBF16LayerHolds(form: (String, String), tp: Int) throws {
        let c = Presets.tiny.withGate(granularity: form.0, placement: form.1)
        let layer = try MLAAttention(config: c, shard: Shard(rank: tp - 1, size: tp), source: source, precision: .bf16)
        let plan = ShardingPlan(config: c, tp: tp, gate: .column, precision: .bf16)
        #expect(plan.bytesPerRank == layer.weightBytes)
        #expect(plan.bytesPerRank * 2 == ShardingPlan(config: c, tp: tp, gate: .column).bytesPerRank)
    }

    @Test func deepseekV3PlanShowsTheReplicatedGateCostAtTp8() {
        let col = ShardingPlan(config: Presets.deepseekV3, tp: 8, gate: .column)
        let rep = ShardingPlan(config: Presets.deepseekV3, tp: 8, gate: .replicated)
        let g = { (p: ShardingPlan) in p.weights.first { $0.name.hasSuffix("gate.weight") }!.bytesPerRank }
        #expect(g(rep) == 7168 * 16384 * 4 && g(col) == g(rep) / 8)   // 470 MB vs 59 MB
        #expect(!rep.runs && col.runs)
    }
}
