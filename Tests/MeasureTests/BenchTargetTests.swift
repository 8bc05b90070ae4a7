@testable import Measure
import MLA
import TensorCore
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

    /// A bf16 bench: the bf16 targets are judged only where oneDNN's bf16 is native; elsewhere
    /// they read "n/a (no native bf16: <the kernel the reference projection ran on>)", never PASS,
    /// whatever was measured. The other targets are judged as in f32.
    @Test(arguments: [OneDNN.BF16Support.emulated, .unavailable])
    func bf16TargetsAreNotApplicableWithoutNativeBF16(support: OneDNN.BF16Support) throws {
        let kernel = "fallback: bf16 widened to f32, OpenBLAS sgemm (oneDNN's bf16 is \(support.rawValue) on this CPU)"
        var p = Self.phase(gemm: 1.5, bandwidth: nil, ratio: 1.0, anonymous: 10)
        p.kernels = [ProjectionKernel(projection: "gate", kernel: kernel)]
        p.referenceProjection = "gate"
        var d = Self.phase(gemm: nil, bandwidth: 0.99, ratio: 1.0, anonymous: 10)
        d.kernels = [ProjectionKernel(projection: "gate", kernel: "bf16 row kernel (avx512)")]
        d.referenceProjection = "gate"
        var rank = Self.rank(0, prefill: p)
        rank.decode = d
        let torch = TorchBaseline(torch: "2.13.0", preset: "tiny", tp: 1, tokens: 1, dtype: "bfloat16",
                                  ranks: [.init(rank: 0, totalSeconds: Samples([10]))])
        let targets = Dictionary(uniqueKeysWithValues: BenchReport.judge([rank], tp: 1, precision: .bf16, bf16Support: support, torch: torch)
            .map { ("\($0.phase.rawValue) \($0.name)", $0) })
        for name in ["prefill gemm-efficiency", "prefill prefill-vs-torch-bf16", "prefill memory", "decode decode-bandwidth", "decode memory"] {
            let t = try #require(targets[name], "\(name) is reported")
            #expect(!t.pass && t.verdict.hasPrefix("n/a (no native bf16: "), "\(name): \(t.verdict)")
        }
        #expect(targets["prefill gemm-efficiency"]?.verdict == "n/a (no native bf16: \(kernel))")
        #expect(targets["decode decode-bandwidth"]?.verdict == "n/a (no native bf16: bf16 row kernel (avx512))")
        #expect(targets["prefill flops-equal-plan"]?.verdict == "PASS")
    }

    @Test func bf16TargetsAreJudgedWithNativeBF16() throws {
        var p = Self.phase(gemm: 0.95, bandwidth: nil, ratio: 1.0, anonymous: 10)
        p.totalSeconds = Samples([0.7])
        let torch = TorchBaseline(torch: "2.13.0", preset: "tiny", tp: 1, tokens: 1, dtype: "bfloat16",
                                  ranks: [.init(rank: 0, totalSeconds: Samples([1]))])
        let judged = BenchReport.judge([Self.rank(0, prefill: p)], tp: 1, precision: .bf16, bf16Support: .native, torch: torch)
        #expect(judged.first { $0.name == "gemm-efficiency" }?.verdict == "PASS")
        #expect(judged.first { $0.name == "prefill-vs-torch-bf16" }.map { $0.verdict == "PASS" && $0.value == 0.7 } == true)
        let without = BenchReport.judge([Self.rank(0, prefill: p)], tp: 1, precision: .bf16, bf16Support: .native, torch: nil)
        #expect(without.first { $0.name == "prefill-vs-torch-bf16" }?.verdict == "n/a (no PyTorch baseline: pass --torch-baseline FILE)")
        // f32 has no bf16 target and nothing n/a.
        let f32 = BenchReport.judge([Self.rank(0, prefill: p)], tp: 1)
        #expect(!f32.contains { $0.name == "prefill-vs-torch-bf16" || $0.notApplicable != nil })
    }
}
