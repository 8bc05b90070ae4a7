import Foundation
import MLA
import Report
import SafeTensors
import Testing
import TestSupport

/// `--kv-cache-dtype` under real mpirun: bf16 and fp8 caches through tensor parallelism, decode
/// context parallelism and data-parallel groups, both decode paths and chunked prefill; a bf16
/// cache bit-identical to an f32 one under `--dtype bf16`; the bytes the ranks hold equal to what
/// `plan` counts per token.
@Suite(.serialized, .tags(.mpirun), .skippedInFastLane) struct KVCacheDTypeCLITests {
    static let layouts: [(ranks: Int, args: [String])] = [
        (2, ["--decode-steps", "4"]),
        (2, ["--seqs", "7,1,12", "--decode-steps", "2", "--prefill-chunk", "3", "--decode", "naive"]),
        (4, ["--seqs", "1,48", "--decode-steps", "1", "--prefill-chunk", "40"]),
        (4, ["--dcp", "2", "--seqs", "7,12", "--decode-steps", "3"]),
        (4, ["--dcp", "4", "--seqs", "13,6", "--decode-steps", "2", "--prefill-chunk", "3"]),  // chunked prefill against the DCP kernel
        (4, ["--dcp", "2", "--seqs", "150,9", "--decode-steps", "2", "--prefill-chunk", "140"]),  // more than one tile of cached rows
        (4, ["--dp", "2", "--seqs", "7,1,12,5", "--decode-steps", "3"]),
        (4, ["--dp", "2", "--seqs", "7,1,12,5", "--decode-steps", "2", "--decode", "naive"]),
        (8, ["--dp", "2", "--dcp", "2", "--seqs", "7,1,12,5,9", "--decode-steps", "3"]),
    ]

    /// Each layout against the unsharded forward served through the same cache: only the
    /// sharding may differ (1e-5); the report says what the cache's rounding costs beside it.
    @Test(arguments: layouts.indices, ["bf16", "fp8"])
    func everyLayoutServesThroughALossyCache(index: Int, dtype: String) throws {
        let (ranks, args) = Self.layouts[index]
        let r = MPIJob.run(ranks: ranks, ["run"] + args + ["--kv-cache-dtype", dtype, "--check", "--json"], timeout: 90)
        #expect(r.status == 0, "\(args) \(dtype): \(r)")
        let report = try r.decoded(RunReport.self)
        let rel = try #require(report.check?.relative, "\(args): \(r)")
        #expect(rel <= 1e-5, "\(args) \(dtype): relative error \(rel)")
        let serving = try #require(report.serving)
        #expect(serving.cacheDType.rawValue == dtype && serving.checkedAgainstServed, "\(args) \(dtype)")
        let cost = try #require(serving.againstPlainForward?.relative, "\(args) \(dtype)")
        #expect(cost > 0 && cost < (dtype == "fp8" ? 0.1 : 0.01), "\(args) \(dtype): the cache moved the output by \(cost) relative")
    }

    /// Under --dtype bf16 an fp8 cache is checked once, in bf16, against the unsharded forward served
    /// through the same cache (an f32 reference would quantize other latents).
    @Test(arguments: [(2, ["--seqs", "64,32", "--decode-steps", "8"]), (4, ["--dcp", "2", "--seqs", "13,6", "--decode-steps", "2", "--prefill-chunk", "3"])])
    func anFP8CacheUnderBF16IsCheckedInBF16(ranks: Int, args: [String]) throws {
        let r = MPIJob.run(ranks: ranks, ["run"] + args + ["--dtype", "bf16", "--kv-cache-dtype", "fp8", "--check", "--json"], timeout: 90)
        #expect(r.status == 0, "\(args): \(r)")
        let report = try r.decoded(RunReport.self)
        #expect(report.check?.pass == true && report.check?.tolerance == 0x1p-5 && report.precisionCheck == nil, "\(args)")
        #expect(report.serving?.checkedAgainstServed == true && report.serving?.againstPlainForward != nil, "\(args)")
    }

    /// Under --dtype bf16 a bf16 cache holds the cached values exactly: every layout's output has
    /// the f32 cache's bits (deepseek-v2-lite's heads, kv_lora 512, so that a difference in how
    /// the readers sum would show through bf16's rounding).
    @Test(arguments: [(2, ["--seqs", "150,9", "--decode-steps", "12"]), (4, ["--dcp", "2", "--seqs", "7,150", "--decode-steps", "8", "--prefill-chunk", "70"]),
                      (4, ["--dp", "2", "--seqs", "7,1,140,5", "--decode-steps", "6", "--decode", "naive"])])
    func aBF16CacheUnderBF16GivesTheF32CachesBits(ranks: Int, args: [String]) throws {
        let args = ["--preset", "deepseek-v2-lite", "--set", "hidden_size=256", "--set", "num_attention_heads=4"] + args
        let dir = try Fixtures.scratch("kv-bf16")
        var outputs: [[Float]] = []
        for dtype in ["f32", "bf16", "auto"] {
            let out = dir.appendingPathComponent("\(dtype).safetensors").path
            let r = MPIJob.run(ranks: ranks, ["run"] + args + ["--dtype", "bf16", "--kv-cache-dtype", dtype, "--output", out, "--json"], timeout: 90)
            #expect(r.status == 0, "\(args) \(dtype): \(r)")
            let report = try r.decoded(RunReport.self)
            #expect(report.serving?.cacheDType == (dtype == "f32" ? .f32 : .bf16) && report.serving?.checkedAgainstServed == false)
            outputs.append(try Fixtures.output(out))
        }
        let differing = { (a: [Float], b: [Float]) in a.count == b.count ? zip(a, b).filter { $0.bitPattern != $1.bitPattern }.count : -1 }
        #expect(differing(outputs[0], outputs[1]) == 0, "\(args): f32 and bf16 caches")
        #expect(differing(outputs[1], outputs[2]) == 0, "\(args): auto is bf16 under --dtype bf16")
    }

    /// The bytes each rank's cache holds (counted by the cache) equal plan's bytes per token × the
    /// tokens the rank caches, for every cache dtype, replicated and under DCP.
    @Test(arguments: ["f32", "bf16", "fp8"])
    func runHoldsWhatPlanCountsPerToken(dtype: String) throws {
        let plan = MPIJob.single(["plan", "--preset", "deepseek-v3", "--tp", "2", "--kv-cache-dtype", dtype, "--json"], timeout: 30)
        #expect(plan.status == 0, "\(plan)")
        let perToken = try plan.decoded(PlanReport.self).kvCache.bytesPerToken
        #expect(perToken == ["f32": 2304, "bf16": 1152, "fp8": 656][dtype], "\(dtype): \(perToken)")
        let tiny = try MPIJob.single(["plan", "--tp", "2", "--kv-cache-dtype", dtype, "--json"], timeout: 30).decoded(PlanReport.self)
        for args in [["--seqs", "7,12", "--decode-steps", "2"], ["--dcp", "2", "--seqs", "7,12", "--decode-steps", "2"]] {
            let r = MPIJob.run(ranks: 2, ["run", "--kv-cache-dtype", dtype, "--no-check", "--json"] + args, timeout: 60)
            #expect(r.status == 0, "\(args): \(r)")
            let report = try r.decoded(RunReport.self)
            for rank in report.ranks {
                let tokens = try #require(rank.cachedTokens)
                #expect(rank.cacheBytes == tokens * tiny.kvCache.bytesPerToken, "\(dtype) \(args) rank \(rank.rank)")
            }
            #expect(report.serving?.cacheBytesPerToken == tiny.kvCache.bytesPerToken)
            #expect(report.serving?.cacheBytesPerRank == report.ranks.compactMap(\.cacheBytes).max())
        }
    }

    /// `plan --layouts` prints the capacity of each cache dtype beside the chosen one.
    @Test func planLayoutsGivesTheCapacityOfEveryCacheDType() throws {
        let r = MPIJob.single(["plan", "--preset", "deepseek-v3", "--ranks", "8", "--layouts", "tp8,dp8", "--memory-per-rank", "80GB",
                               "--kv-cache-dtype", "fp8"], timeout: 30)
        #expect(r.status == 0, "\(r)")
        for needle in ["KV cache in fp8", "Capacity by KV-cache dtype", "f32 (2.3 KB)", "bf16 (1.2 KB)", "fp8 (656 B)"] {
            #expect(r.stdout.contains(needle), "missing \(needle): \(r.stdout)")
        }
    }
}
