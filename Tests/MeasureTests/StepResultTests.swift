import Measure
import MLA
import Testing

/// The sweep step's aggregation of typed per-rank timings.
@Suite struct StepResultTests {
    /// A forward from `start` with stages of the given lengths, one after another.
    static func forward(_ start: Double, _ stages: [(ForwardStage, Double)]) -> RankSteps.Forward {
        var t = start, segments: [StageSegment] = []
        for (stage, length) in stages {
            segments.append(StageSegment(stage: stage, start: t, end: t + length))
            t += length
        }
        return RankSteps.Forward(start: start, end: t, segments: segments)
    }

    static let compute: [(ForwardStage, Double)] = [(.q, 1), (.kv, 1), (.attention, 2), (.gate, 1), (.oProj, 1)]

    @Test func durationsRunFromTheFirstStartToTheLastEndAndTheTimelineIsTheFastest() throws {
        // Repeat 0: rank 1 starts 2 s late (it waits 2 s less); repeat 1: both together.
        let r0 = RankSteps(rank: 0, anonymousBytes: 10, weightBytes: 7, flops: 99, forwards: [
            Self.forward(100, Self.compute + [(.wait, 2), (.allReduce, 1)]),
            Self.forward(200, Self.compute + [(.wait, 0), (.allReduce, 1)]),
        ])
        let r1 = RankSteps(rank: 1, anonymousBytes: 12, weightBytes: 7, flops: 99, forwards: [
            Self.forward(102, Self.compute + [(.wait, 0), (.allReduce, 1)]),
            Self.forward(200, Self.compute + [(.wait, 0), (.allReduce, 1)]),
        ])
        let step = StepResult(model: "m", tp: 2, gate: .column, tokens: 4, context: nil, decode: nil, ranks: [r0, r1])
        #expect(step.repeats == 2)
        #expect(step.forwardSeconds == [9, 7])                // 100 … 109 (rank 1 from 102), then 200 … 207
        #expect(step.bestSeconds == 7 && step.seconds == 8)
        #expect(step.bestAllReduceSeconds == 1)               // mean over ranks of wait + allreduce in repeat 1
        #expect(step.allReduceSeconds == (2.0 + 1.0) / 2)     // median of (3+1)/2 = 2 and (1+1)/2 = 1
        #expect(step.ranks.map(\.anonymousBytes) == [10, 12])
        // The timeline is repeat 1's, every stage on one clock from 0.
        let lane = try #require(step.timeline.first)
        #expect(lane.map(\.kind) == [.q, .kv, .attention, .gate, .oProj, .wait, .allReduce])
        #expect(lane.first?.start == 0 && lane.last?.end == 7)
    }

    @Test func segmentKindsKeepTheirJsonNamesAndOldFilesStillDecode() throws {
        #expect(SegmentKind(.oProj).rawValue == "o_proj" && SegmentKind(.allReduce).rawValue == "allreduce")
        for stage in ForwardStage.allCases { #expect(SegmentKind(stage).rawValue == stage.rawValue) }
        #expect(SegmentKind(rawValue: "compute") == .compute, "files written before stages were timed apart")
    }
}
