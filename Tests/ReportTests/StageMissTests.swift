import MLA
import Measure
import Planner
import Report
import Testing

/// A sweep row whose projection misses says which stage's model missed: the stage whose projected
/// time is furthest from the time it took in the fastest measured forward.
@Suite struct StageMissTests {
    /// A measured step with one forward per rank whose stages took `seconds` each, back to back.
    static func step(_ seconds: [ForwardStage: Double], ranks: Int = 2) -> StepResult {
        let order: [ForwardStage] = [.q, .kv, .attention, .gate, .oProj, .allReduce]
        let steps = (0..<ranks).map { r in
            var t = 0.0, segments: [StageSegment] = []
            for stage in order { let d = seconds[stage] ?? 0; segments.append(StageSegment(stage: stage, start: t, end: t + d)); t += d }
            return RankSteps(rank: r, anonymousBytes: 0, weightBytes: 0, flops: 0, forwards: [.init(start: 0, end: t, segments: segments)])
        }
        return StepResult(model: "deepseek-v3", tp: ranks, gate: .column, tokens: 128, context: nil, decode: nil, ranks: steps)
    }

    static func projection() throws -> Projection {
        let hw = Hardware(name: "test", flopsPerSecond: 50e9, memoryBytesPerSecond: 20e9, linkBytesPerSecond: 2e9, linkLatencySeconds: 1e-6,
                          bytesPerElement: 4, source: "test")
        let cost = try FlopModel.prefill(config: Presets.deepseekV3, tp: 2, gate: .column, sequenceLengths: [128])
        return Projection(cost: cost, tokens: 128, config: Presets.deepseekV3, tp: 2, hardware: hw)
    }

    /// The measured stages as projected, with `stage` taking `factor` times its projection.
    static func measured(_ p: Projection, slow stage: ForwardStage?, factor: Double) -> [ForwardStage: Double] {
        var m: [ForwardStage: Double] = [.allReduce: p.allReduceSeconds]
        let map: [String: ForwardStage] = ["q_a_proj": .q, "q_b_proj": .q, "kv_a_proj_with_mqa": .kv, "kv_b_proj": .kv, "gate": .gate, "o_proj": .oProj]
        for s in p.stages { m[map[s.name] ?? .attention, default: 0] += s.seconds }
        if let stage { m[stage]! *= factor }
        return m
    }

    @Test func theStageFurthestFromItsProjectionIsNamed() throws {
        let p = try Self.projection()
        let miss = try #require(StageMiss.largest(p, step: Self.step(Self.measured(p, slow: .oProj, factor: 3))))
        #expect(miss.stage == "o_proj" && miss.measuredSeconds > 2.9 * miss.projectedSeconds, "\(miss)")
        let q = try #require(StageMiss.largest(p, step: Self.step(Self.measured(p, slow: .q, factor: 4))))
        #expect(q.stage == "q", "\(q)")
    }

    @Test func aProjectionWithinTwentyPercentNamesNoStage() throws {
        let p = try Self.projection()
        #expect(StageMiss.largest(p, step: Self.step(Self.measured(p, slow: nil, factor: 1))) == nil)
        #expect(StageMiss.largest(p, step: Self.step(Self.measured(p, slow: .attention, factor: 1.1))) == nil)
    }
}
