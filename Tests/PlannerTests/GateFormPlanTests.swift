@testable import MLA
import Planner
import TensorCore
import TensorParallel
import Testing

/// The plan of every gate form — element- or head-wise, separate or packed into the q
/// projection — against itself and against what the layer counts while it runs.
@Suite struct GateFormPlanTests {
    static let forms: [(granularity: String, placement: String)] = [("element", "separate"), ("head", "separate"),
                                                                   ("element", "packed"), ("head", "packed")]

    /// A sigmoid gate with its bias, in `form`.
    static func config(_ form: (granularity: String, placement: String)) -> MLAConfig {
        var c = Presets.tiny.withGate(granularity: form.granularity, placement: form.placement)
        c.gatedAttnAct = GateActivation.sigmoid.rawValue
        c.useBias = true
        return c
    }

    /// The head-wise gate is one value per head: v times fewer weights and FLOPs than the element-wise one.
    @Test func headWiseGateIsVTimesSmaller() throws {
        let element = Self.config(("element", "separate")), head = Self.config(("head", "separate"))
        let gateBytes = { (c: MLAConfig) in ShardingPlan(config: c, tp: 2, gate: .column).weights.filter { $0.name.contains(".gate.") }.reduce(0) { $0 + $1.bytesPerRank } }
        #expect(gateBytes(element) == 32 * gateBytes(head))
        let gateFlops = { (c: MLAConfig) throws in try FlopModel.prefill(config: c, tp: 2, gate: .column, sequenceLengths: [16]).stage("gate")!.flops }
        #expect(try gateFlops(element) == 32 * gateFlops(head))
        let packed = Self.config(("element", "packed"))
        #expect(try FlopModel.prefill(config: packed, tp: 2, gate: .column, sequenceLengths: [16]).stage("gate") == nil, "a packed gate is part of q_b_proj")
        #expect(ShardingPlan(config: packed, tp: 2, gate: .column).weights.first { $0.name.hasSuffix("q_b_proj.weight") }?.globalShape == [8 * (48 + 32), 96])
    }

    /// Counted FLOPs equal the plan's for every form (prefill, and a serving pass on both paths).
    @Test(arguments: forms.indices)
    func countersEqualThePlanForEveryForm(form: Int) throws {
        let c = Self.config(Self.forms[form])
        for tp in [1, 2, 8] {
            let layer = try MLAAttention(config: c, shard: Shard(rank: tp - 1, size: tp), source: SeededWeights(seed: 5))
            let batch = try Batch(sequenceLengths: [9, 70])
            let x = try seededInput(tokens: batch.tokenCount, hidden: c.hiddenSize, seed: 3)
            _ = try layer.forward(x, batch: batch, collectives: .local)
            let plan = try FlopModel.prefill(config: c, tp: tp, gate: .column, sequenceLengths: [9, 70])
            #expect(layer.counters.totalFlops == plan.totalFlops, "\(Self.forms[form]) tp=\(tp) prefill")
            for path in DecodePath.allCases {
                let schedule = try ServingSchedule(batch: batch, decodeSteps: 2)
                _ = try layer.serve(x, batch: batch, schedule: schedule, decode: path, collectives: .local)
                let served = try FlopModel.serving(config: c, tp: tp, gate: .column, schedule: schedule, path: path, sequences: 2)
                #expect(layer.counters.totalFlops == served.totalFlops, "\(Self.forms[form]) tp=\(tp) \(path)")
            }
        }
    }
}
