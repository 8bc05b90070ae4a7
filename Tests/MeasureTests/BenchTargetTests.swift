@testable import Measure
import MLA
import Testing

/// bench's targets are judged on the worst rank, each against its bound.
@Suite struct BenchTargetTests {
    static func phase(gemm: Double?, bandwidth: Double?, ratio: Double, anonymous: Int, flops: Int = 10, plan: Int = 10) -> BenchPhaseResult {
        let s = Samples([1])
        var p = BenchPhaseResult(tokensPerForward: 1, sequences: 1, totalSeconds: s, computeSeconds: s, allReduceSeconds: s,
                                 allReduceWaitSeconds: s, stages: nil, cpuSeconds: s, flops: flops, projectionFlops: flops,
                                 attentionFlops: 0, planFlops: plan, flopsPerSecond: 1, allReduceBytes: 4,
                                 memory: BenchMemory(anonymousBytes: anonymous, pssBytes: 1, rssBytes: 1, rssBeforeTimedBytes: 100,
                                                     peakDuringTimedBytes: 100, peakWasReset: true, weightBytes: 90, replicatedBytes: 30,
                                                     shardBytes: 60, activationBytes: 1, budgetBytes: 100, smallestWeightBytes: 10,
                                                     fullLayerBytes: 150))
        p.gemmEfficiency = gemm
        p.bandwidthEfficiency = bandwidth
        p.allReduceRatio = ratio
        return p
    }

    static func rank(_ r: Int, prefill: BenchPhaseResult) -> BenchRankResult {
        var rank = BenchRankResult(rank: r, blasThreads: 1, weightBytes: 90, runtimeAnonymousBytes: 10, loadedAnonymousBytes: 100)
        rank.prefill = prefill
        return rank
    }

    @Test func eachTargetTakesTheWorstRank() throws {
        let ranks = [Self.rank(0, prefill: Self.phase(gemm: 0.95, bandwidth: nil, ratio: 1.0, anonymous: 80)),
                     Self.rank(1, prefill: Self.phase(gemm: 0.85, bandwidth: nil, ratio: 1.3, anonymous: 99))]
        let targets = Dictionary(uniqueKeysWithValues: BenchReport.judge(ranks, tp: 2).map { ($0.name, $0) })
        let gemm = try #require(targets["gemm-efficiency"])
        #expect(gemm.value == 0.85 && !gemm.pass && gemm.phase == .prefill)
        let reduce = try #require(targets["allreduce-overhead"])
        #expect(reduce.value == 1.3 && !reduce.pass)
        #expect(targets["memory"]?.value == 0.99 && targets["memory"]?.pass == true)
        #expect(targets["flops-equal-plan"]?.pass == true)
        #expect(targets["own-shard-only"]?.value == 1.0 && targets["own-shard-only"]?.phase == .load)
        #expect(targets["decode-bandwidth"] == nil, "no decode phase, no decode target")
    }

    @Test func countedFlopsThatDifferFromThePlanOrAcrossRanksFail() {
        let off = [Self.rank(0, prefill: Self.phase(gemm: 1, bandwidth: nil, ratio: 1, anonymous: 1, flops: 10, plan: 11))]
        #expect(BenchReport.judge(off, tp: 1).first { $0.name == "flops-equal-plan" }?.pass == false)
        let split = [Self.rank(0, prefill: Self.phase(gemm: 1, bandwidth: nil, ratio: 1, anonymous: 1, flops: 10, plan: 10)),
                     Self.rank(1, prefill: Self.phase(gemm: 1, bandwidth: nil, ratio: 1, anonymous: 1, flops: 12, plan: 12))]
        #expect(BenchReport.judge(split, tp: 2).first { $0.name == "flops-equal-plan" }?.pass == false)
    }
}
