import Foundation
import Testing
import TestSupport

/// `mla-tp bench` under a real `mpirun`: every field is present and consistent. Fields only:
/// speed depends on the machine and is never asserted here.
@Suite(.serialized) struct BenchTests {
    typealias Object = [String: Any]

    static func document(_ r: MPIJob.Result) throws -> Object {
        let data = try #require(r.stdout.data(using: .utf8))
        return try #require(try JSONSerialization.jsonObject(with: data) as? Object, "not a JSON object: \(r)")
    }

    static func number(_ o: Object?, _ key: String) -> Double? { (o?[key] as? NSNumber)?.doubleValue }

    /// A `{median, min, max, samples}` object with `count` samples (any number ≥ 1 when nil),
    /// min ≤ median ≤ max, all ≥ 0.
    @discardableResult
    static func checkStats(_ o: Object?, _ name: String, count: Int?) -> [Double] {
        guard let s = o?[name] as? Object, let med = number(s, "median"), let lo = number(s, "min"), let hi = number(s, "max"),
              let samples = (s["samples"] as? [NSNumber])?.map(\.doubleValue) else {
            Issue.record("\(name): missing or malformed stats in \(String(describing: o))")
            return []
        }
        if let count { #expect(samples.count == count, "\(name): \(samples.count) samples, expected \(count)") }
        #expect(!samples.isEmpty, "\(name): no samples")
        #expect(lo <= med && med <= hi, "\(name): median \(med) outside [\(lo), \(hi)]")
        #expect(lo >= 0, "\(name): negative time \(lo)")
        #expect(samples.allSatisfy { $0 >= lo && $0 <= hi }, "\(name): a sample outside [min, max]")
        return samples
    }

    /// The checks every phase gets, on every rank.
    static func checkPhase(_ doc: Object, _ phase: String, tp: Int, repeats: Int) {
        let ranks = doc["ranks"] as? [Object] ?? []
        #expect(ranks.count == tp, "ranks: \(ranks.count), expected \(tp)")
        var flops: [Double] = []
        for (i, rank) in ranks.enumerated() {
            #expect(number(rank, "rank") == Double(i))
            guard let p = rank[phase] as? Object else { Issue.record("rank \(i): no \(phase) section"); continue }
            let total = checkStats(p, "totalSeconds", count: repeats)
            checkStats(p, "cpuSeconds", count: repeats)
            let compute = checkStats(p, "computeSeconds", count: repeats)
            let reduce = checkStats(p, "allReduceSeconds", count: repeats)
            let wait = checkStats(p, "allReduceWaitSeconds", count: repeats)
            if total.count == repeats, compute.count == repeats, reduce.count == repeats, wait.count == repeats {
                for k in 0..<repeats {
                    let sum = compute[k] + reduce[k] + wait[k]
                    #expect(abs(sum - total[k]) <= 1e-6 + 1e-6 * total[k], "rank \(i) forward \(k): compute+allreduce+wait \(sum) ≠ total \(total[k])")
                    #expect(compute[k] >= 0 && compute[k] <= total[k])
                }
            }
            let f = number(p, "flops") ?? 0
            #expect(f > 0, "rank \(i): flops \(f)")
            #expect(number(p, "planFlops") == f, "rank \(i): counted FLOPs differ from the plan's")
            #expect((number(p, "projectionFlops") ?? 0) + (number(p, "attentionFlops") ?? 0) == f)
            #expect((number(p, "flopsPerSecond") ?? 0) > 0)
            flops.append(f)
            #expect((number(p, "allReduceBytes") ?? 0) > 0)
            if tp > 1 {
                checkStats(p, "rawAllReduceSeconds", count: repeats)
                checkStats(p, "rawColdAllReduceSeconds", count: repeats)
                #expect((number(p, "allReduceRatio") ?? 0) > 0, "rank \(i): no allReduceRatio")
                #expect((number(p, "allReduceColdRatio") ?? 0) > 0, "rank \(i): no allReduceColdRatio")
            }

            let m = p["memory"] as? Object
            for key in ["anonymousBytes", "pssBytes", "rssBytes", "weightBytes", "activationBytes", "budgetBytes",
                        "replicatedBytes", "shardBytes", "fullLayerBytes", "smallestWeightBytes", "peakDuringTimedBytes"] {
                #expect((number(m, key) ?? 0) > 0, "rank \(i) \(phase): memory.\(key) missing or 0")
            }
            #expect(number(m, "weightBytes") == (number(m, "replicatedBytes") ?? 0) + (number(m, "shardBytes") ?? 0))
            #expect(number(m, "weightBytes") == number(rank, "weightBytes"))
        }
        #expect(Set(flops).count == 1, "FLOPs differ across ranks: \(flops)")
    }

    @Test func prefillAndDecodeReportEveryFieldOnEveryRank() throws {
        let tp = 2, repeats = 2
        let r = MPIJob.run(ranks: tp, ["bench", "--preset", "tiny", "--phase", "both", "--repeat", "\(repeats)",
                                       "--tokens", "70", "--copy-mib", "8", "--json"], timeout: 120)
        #expect(r.status == 0, "\(r)")
        let doc = try Self.document(r)
        #expect(doc["command"] as? String == "bench")
        #expect(doc["model"] as? String == "tiny")
        #expect(Self.number(doc, "tp") == Double(tp))
        #expect(Self.number(doc, "tokens") == 70)
        #expect(Self.number(doc, "repeats") == Double(repeats))
        #expect((doc["blasThreads"] as? [Any])?.count == tp)
        #expect(Self.number(doc, "loadAverage") != nil)
        Self.checkPhase(doc, "prefill", tp: tp, repeats: repeats)
        Self.checkPhase(doc, "decode", tp: tp, repeats: repeats)

        for rank in doc["ranks"] as? [Object] ?? [] {
            let p = rank["prefill"] as? Object
            #expect((Self.number(p, "sgemmFlopsPerSecond") ?? 0) > 0)
            #expect((Self.number(p, "gemmEfficiency") ?? 0) > 0)
            Self.checkStats(p, "sgemmSeconds", count: repeats)
            #expect((p?["sgemmShape"] as? [NSNumber])?.map(\.intValue).first == 70)
            let d = rank["decode"] as? Object
            #expect(Self.number(d, "tokensPerForward") == 1)
            // Decode prefilled 70 tokens, then one warm-up step and the step memory is read around:
            // the timed steps see 72, then 73 cached tokens.
            #expect(Self.number(d, "contextFirst") == 72)
            #expect(Self.number(d, "contextLast") == 73)
            #expect((Self.number(d, "weightBytesPerToken") ?? 0) > 0)
            #expect(Self.number(d, "weightBytesPerToken") == Self.number(rank, "weightBytes"))
            #expect((Self.number(d, "weightBytesPerSecond") ?? 0) > 0)
            #expect((Self.number(d, "copyBytesPerSecond") ?? 0) > 0)
            #expect((Self.number(d, "bandwidthEfficiency") ?? 0) > 0)
            // Busy time excludes the wait, so its ratio is never below the whole step's.
            #expect((Self.number(d, "busyBandwidthEfficiency") ?? 0) >= (Self.number(d, "bandwidthEfficiency") ?? 1) * 0.999)
            Self.checkStats(d, "copySeconds", count: repeats)
            #expect((Self.number(d, "cacheBytes") ?? 0) > 0)
        }

        let targets = doc["targets"] as? [Object] ?? []
        let names = Set(targets.compactMap { $0["name"] as? String })
        for name in ["gemm-efficiency", "allreduce-overhead", "memory", "no-weight-sized-allocation", "flops-equal-plan",
                     "decode-bandwidth", "own-shard-only"] {
            #expect(names.contains(name), "target \(name) missing: \(names)")
        }
        for t in targets {
            #expect(t["pass"] is Bool && t["value"] is NSNumber && t["bound"] is NSNumber, "malformed target \(t)")
            if t["name"] as? String == "flops-equal-plan" { #expect(t["pass"] as? Bool == true, "\(t)") }
        }
    }

    @Test func textReportHasEverySection() {
        let r = MPIJob.run(ranks: 2, ["bench", "--preset", "tiny", "--phase", "both", "--repeat", "1", "--tokens", "16",
                                      "--copy-mib", "8"], timeout: 120)
        #expect(r.status == 0, "\(r)")
        for needle in ["mla-tp bench: model tiny, tp=2", "Prefill: 16 tokens", "sgemm GFLOP/s", "Decode (absorbed)",
                       "memcpy GB/s", "raw MPI_Allreduce", "equal on every rank", "Memory per rank", "Targets"] {
            #expect(r.stdout.contains(needle), "missing \(needle): \(r)")
        }
    }

    @Test func singleRankHasNoAllreduceReference() throws {
        let r = MPIJob.run(ranks: 1, ["bench", "--preset", "tiny", "--repeat", "2", "--tokens", "16", "--json"], timeout: 60)
        #expect(r.status == 0, "\(r)")
        let doc = try Self.document(r)
        Self.checkPhase(doc, "prefill", tp: 1, repeats: 2)
        let p = (doc["ranks"] as? [Object])?.first?["prefill"] as? Object
        #expect(p?["rawAllReduceSeconds"] == nil)
        #expect(Self.number(p?["allReduceSeconds"] as? Object, "max") == 0)
    }

    @Test func badRepeatIsAUsageError() {
        let r = MPIJob.run(ranks: 2, ["bench", "--preset", "tiny", "--repeat", "0"], timeout: 30)
        #expect(r.status == 2, "\(r)")
        #expect(r.stderr.contains("--repeat"), "\(r)")
    }
}
