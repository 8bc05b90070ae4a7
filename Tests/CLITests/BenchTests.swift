import Foundation
import Measure
import MLA
import Testing
import TestSupport

/// `mla-tp bench` under a real `mpirun`: every field is present and consistent. Fields only:
/// speed depends on the machine and is never asserted here.
@Suite(.serialized, .tags(.mpirun), .skippedInFastLane) struct BenchTests {
    /// `count` samples (any number ≥ 1 when nil), min ≤ median ≤ max, all ≥ 0.
    @discardableResult
    static func checkStats(_ s: Samples?, _ name: String, count: Int?) -> [Double] {
        guard let s else {
            Issue.record("\(name): missing")
            return []
        }
        if let count { #expect(s.samples.count == count, "\(name): \(s.samples.count) samples, expected \(count)") }
        #expect(!s.samples.isEmpty, "\(name): no samples")
        #expect(s.min <= s.median && s.median <= s.max, "\(name): median \(s.median) outside [\(s.min), \(s.max)]")
        #expect(s.min >= 0, "\(name): negative time \(s.min)")
        #expect(s.samples.allSatisfy { $0 >= s.min && $0 <= s.max }, "\(name): a sample outside [min, max]")
        return s.samples
    }

    /// The checks every phase gets, on every rank.
    static func checkPhase(_ doc: BenchReport, _ phase: KeyPath<BenchRankResult, BenchPhaseResult?>, tp: Int, repeats: Int) {
        #expect(doc.ranks.count == tp, "ranks: \(doc.ranks.count), expected \(tp)")
        var flops: [Int] = []
        for (i, rank) in doc.ranks.enumerated() {
            #expect(rank.rank == i)
            guard let p = rank[keyPath: phase] else { Issue.record("rank \(i): no \(phase) section"); continue }
            let total = checkStats(p.totalSeconds, "totalSeconds", count: repeats)
            checkStats(p.cpuSeconds, "cpuSeconds", count: repeats)
            let compute = checkStats(p.computeSeconds, "computeSeconds", count: repeats)
            let reduce = checkStats(p.allReduceSeconds, "allReduceSeconds", count: repeats)
            let wait = checkStats(p.allReduceWaitSeconds, "allReduceWaitSeconds", count: repeats)
            // compute is the sum of the stages, each timed on its own: with the wait and the
            // allreduce it covers the forward but the untimed glue between stages.
            if [total, compute, reduce, wait].allSatisfy({ $0.count == repeats }) {
                for k in 0..<repeats {
                    let covered = compute[k] + reduce[k] + wait[k]
                    #expect(covered <= total[k] * (1 + 1e-9), "rank \(i) forward \(k): stages \(covered) exceed the forward \(total[k])")
                    #expect(covered >= 0.5 * total[k], "rank \(i) forward \(k): stages cover only \(covered) of \(total[k])")
                }
            }
            let stages = Dictionary((p.stages ?? []).map { ($0.stage, $0.seconds) }, uniquingKeysWith: { a, _ in a })
            #expect(Set(stages.keys) == Set(ForwardStage.allCases), "rank \(i): stages \(stages.keys)")
            for stage in ForwardStage.compute { #expect((stages[stage]?.median ?? 0) > 0, "rank \(i): no time in \(stage)") }
            #expect(p.flops > 0 && p.planFlops == p.flops, "rank \(i): counted FLOPs \(p.flops) vs plan \(p.planFlops)")
            #expect(p.projectionFlops + p.attentionFlops == p.flops && p.flopsPerSecond > 0 && p.allReduceBytes > 0)
            flops.append(p.flops)
            if tp > 1 {
                checkStats(p.rawAllReduceSeconds, "rawAllReduceSeconds", count: repeats)
                checkStats(p.rawColdAllReduceSeconds, "rawColdAllReduceSeconds", count: repeats)
                #expect((p.allReduceRatio ?? 0) > 0 && (p.allReduceColdRatio ?? 0) > 0, "rank \(i): no allreduce ratios")
                #expect(p.allReducePath != nil)
            }
            let m = p.memory
            for (key, value) in [("anonymousBytes", m.anonymousBytes), ("pssBytes", m.pssBytes), ("rssBytes", m.rssBytes),
                                 ("weightBytes", m.weightBytes), ("activationBytes", m.activationBytes), ("budgetBytes", m.budgetBytes),
                                 ("replicatedBytes", m.replicatedBytes), ("shardBytes", m.shardBytes), ("fullLayerBytes", m.fullLayerBytes),
                                 ("smallestWeightBytes", m.smallestWeightBytes), ("peakDuringTimedBytes", m.peakDuringTimedBytes)] {
                #expect(value > 0, "rank \(i): memory.\(key) is 0")
            }
            #expect(m.weightBytes == m.replicatedBytes + m.shardBytes && m.weightBytes == rank.weightBytes)
        }
        #expect(Set(flops).count == 1, "FLOPs differ across ranks: \(flops)")
    }

    @Test func prefillAndDecodeReportEveryFieldOnEveryRank() throws {
        let tp = 2, repeats = 2
        let r = MPIJob.run(ranks: tp, ["bench", "--preset", "tiny", "--phase", "both", "--repeat", "\(repeats)",
                                       "--tokens", "70", "--copy-mib", "8", "--json"], timeout: 120)
        #expect(r.status == 0, "\(r)")
        let doc = try r.decoded(BenchReport.self)
        #expect(doc.command == "bench" && doc.model == "tiny" && doc.tp == tp && doc.tokens == 70 && doc.repeats == repeats)
        #expect(doc.blasThreads.count == tp && doc.loadAverage != nil)
        Self.checkPhase(doc, \.prefill, tp: tp, repeats: repeats)
        Self.checkPhase(doc, \.decode, tp: tp, repeats: repeats)

        for rank in doc.ranks {
            let p = try #require(rank.prefill), d = try #require(rank.decode)
            #expect((p.sgemmFlopsPerSecond ?? 0) > 0 && (p.gemmEfficiency ?? 0) > 0)
            Self.checkStats(p.sgemmSeconds, "sgemmSeconds", count: repeats)
            #expect(p.sgemmShape?.first == 70)
            #expect(d.tokensPerForward == 1)
            // Decode prefilled 70 tokens, then one warm-up step and the step memory is read around:
            // the timed steps see 72, then 73 cached tokens.
            #expect(d.contextFirst == 72 && d.contextLast == 73)
            #expect((d.weightBytesPerToken ?? 0) > 0 && d.weightBytesPerToken == rank.weightBytes)
            #expect((d.weightBytesPerSecond ?? 0) > 0 && (d.copyBytesPerSecond ?? 0) > 0 && (d.bandwidthEfficiency ?? 0) > 0)
            // Busy time excludes the wait, so its ratio is never below the whole step's.
            #expect((d.busyBandwidthEfficiency ?? 0) >= (d.bandwidthEfficiency ?? 1) * 0.999)
            Self.checkStats(d.copySeconds, "copySeconds", count: repeats)
            #expect((d.cacheBytes ?? 0) > 0)
        }

        let names = Set(doc.targets.map(\.name))
        for name in ["gemm-efficiency", "allreduce-overhead", "memory", "no-weight-sized-allocation", "flops-equal-plan",
                     "decode-bandwidth", "own-shard-only"] {
            #expect(names.contains(name), "target \(name) missing: \(names)")
        }
        #expect(doc.targets.first { $0.name == "flops-equal-plan" }?.pass == true)
        #expect(doc.check == nil, "no --check, no comparison")
    }

    @Test func textReportHasEverySection() {
        let r = MPIJob.run(ranks: 2, ["bench", "--preset", "tiny", "--phase", "both", "--repeat", "1", "--tokens", "16",
                                      "--copy-mib", "8"], timeout: 120)
        #expect(r.status == 0, "\(r)")
        for needle in ["mla-tp bench: model tiny, tp=2", "Prefill: 16 tokens", "sgemm GFLOP/s", "Decode (absorbed)",
                       "memcpy GB/s", "raw MPI_Allreduce", "equal on every rank", "Memory per rank", "Targets",
                       "Stages (median ms per forward", "attention", "o_proj"] {
            #expect(r.stdout.contains(needle), "missing \(needle): \(r)")
        }
    }

    @Test func singleRankHasNoAllreduceReference() throws {
        let r = MPIJob.run(ranks: 1, ["bench", "--preset", "tiny", "--repeat", "2", "--tokens", "16", "--json"], timeout: 60)
        #expect(r.status == 0, "\(r)")
        let doc = try r.decoded(BenchReport.self)
        Self.checkPhase(doc, \.prefill, tp: 1, repeats: 2)
        let p = try #require(doc.ranks.first?.prefill)
        #expect(p.rawAllReduceSeconds == nil && p.allReduceSeconds.max == 0)
    }

    /// `--check` holds the timed layer against the unsharded forward (the same check `run` prints).
    @Test func checkComparesTheTimedLayerWithTheUnshardedForward() throws {
        let r = MPIJob.run(ranks: 2, ["bench", "--preset", "tiny", "--repeat", "1", "--tokens", "24", "--check", "--json"], timeout: 60)
        #expect(r.status == 0, "\(r)")
        let check = try #require(try r.decoded(BenchReport.self).check, "no check: \(r)")
        #expect(check.pass && check.relative <= 1e-5 && check.tolerance == 1e-5)
    }

    @Test func badRepeatIsAUsageError() {
        let r = MPIJob.run(ranks: 2, ["bench", "--preset", "tiny", "--repeat", "0"], timeout: 30)
        #expect(r.status == 2, "\(r)")
        #expect(r.stderr.contains("--repeat"), "\(r)")
    }
}
