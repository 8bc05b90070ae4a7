import Foundation
import Report
import SafeTensors
import Testing
import TestSupport

/// Data-parallel attention and decode context parallelism under real mpirun: every layout
/// gives the unsharded forward, prefill and decode, on both decode paths where allowed.
@Suite(.serialized, .tags(.mpirun), .skippedInFastLane) struct LayoutTests {
    static let cases: [(ranks: Int, args: [String])] = [
        (4, ["--dp", "2", "--seqs", "7,1,12,5"]),                                            // dp 2 × tp 2, prefill
        (4, ["--dp", "2", "--seqs", "7,1,12,5", "--decode-steps", "3"]),
        (4, ["--dp", "2", "--seqs", "7,1,12,5", "--decode-steps", "2", "--decode", "naive"]),
        (4, ["--dp", "4", "--seqs", "7,1,12,5", "--decode-steps", "2"]),                      // dp 4 × tp 1
        (4, ["--dp", "4", "--seqs", "7,1,12,5", "--decode-steps", "2", "--decode", "naive"]),
        (4, ["--dcp", "2", "--seqs", "7,12"]),                                               // tp 4, dcp 2, prefill through the cache
        (4, ["--dcp", "2", "--seqs", "7,12", "--decode-steps", "3"]),
        (4, ["--dcp", "4", "--seqs", "7,12,9", "--decode-steps", "3"]),                       // tp 4, dcp 4
        (4, ["--dcp", "4", "--seqs", "13,6", "--decode-steps", "2", "--prefill-chunk", "3"]), // chunked prefill, mixed steps
        (4, ["--dp", "2", "--dcp", "2", "--seqs", "7,1,12,5", "--decode-steps", "3"]),        // dp 2 × tp 2, dcp 2
        (4, ["--dp", "2", "--dcp", "2", "--seqs", "1,48", "--decode-steps", "1", "--prefill-chunk", "40"]),
        (8, ["--dp", "2", "--dcp", "2", "--seqs", "7,1,12,5,9", "--decode-steps", "3"]),      // P = 8: dp 2 × tp 4, dcp 2
        (4, ["--dcp", "4", "--seqs", "1,2,3,5", "--decode-steps", "1"]),                      // sequences shorter than C
        (4, ["--dp", "4", "--seqs", "9"]),                                                    // three empty groups
        (8, ["--dp", "4", "--dcp", "2", "--seqs", "3,20", "--decode-steps", "2"]),            // empty groups under DCP
        (4, ["--dp", "2", "--seqs", "0,0"]),                                                  // empty sequences
        (4, ["--dcp", "2", "--set", "use_gated_attn=false", "--act", "scaled_softsign", "--seqs", "6,11", "--decode-steps", "4"]),
    ]

    @Test(arguments: cases.indices)
    func everyLayoutEqualsTheUnshardedForward(index: Int) throws {
        let (ranks, args) = Self.cases[index]
        let r = MPIJob.run(ranks: ranks, ["run"] + args + ["--check", "--json"], timeout: 90)
        #expect(r.status == 0, "\(args): \(r)")
        let report = try r.decoded(RunReport.self)
        let rel = try #require(report.check?.relative, "\(args): \(r)")
        #expect(rel <= 1e-5, "\(args): relative error \(rel)")
        #expect(report.ranks.count == ranks)
    }

    /// Each group caches only its own sequences; each DCP rank only its tokens (i mod C).
    @Test func eachRankHoldsOnlyItsGroupsSequencesAndItsShareOfTheirTokens() throws {
        let dp = MPIJob.run(ranks: 4, ["run", "--dp", "2", "--seqs", "7,1,12,5", "--decode-steps", "2", "--json"], timeout: 60)
        let d = try dp.decoded(RunReport.self)
        #expect(d.assignment == [[1, 2], [0, 3]], "longest first, each to the lighter group: \(String(describing: d.assignment))")
        #expect(d.ranks.map(\.cachedTokens) == [13, 13, 12, 12] && d.ranks.map(\.dpGroup) == [0, 0, 1, 1], "\(dp)")
        let dcp = MPIJob.run(ranks: 4, ["run", "--dcp", "4", "--seqs", "7,12", "--decode-steps", "2", "--json"], timeout: 60)
        let c = try dcp.decoded(RunReport.self)
        // 7 tokens: 2,2,2,1 on indices 0–3; 12 tokens: 3 each.
        #expect(c.ranks.map(\.cachedTokens) == [5, 5, 5, 4] && c.ranks.map(\.dcpIndex) == [0, 1, 2, 3], "\(dcp)")
        let names = Set(c.ranks.flatMap { $0.communicators ?? [] }.map(\.name))
        #expect(names.contains("dcp group 0.0 (ranks 0–3)"), "\(names)")
        let text = MPIJob.run(ranks: 4, ["run", "--dp", "2", "--seqs", "7,1,12,5"], timeout: 60)
        for needle in ["dp2xtp2", "DP group", "group 0: #1 #2", "group 1: #0 #3", "tp group 0 (ranks 0–1)", "tp group 1 (ranks 2–3)", "PASS"] {
            #expect(text.stdout.contains(needle), "missing \(needle): \(text)")
        }
    }

    /// HF golden checkpoints served through DCP decode and through DP groups.
    @Test(arguments: [["--dcp", "2", "--decode-steps", "3"], ["--dp", "2", "--decode-steps", "2"], ["--dp", "2"],
                      ["--dp", "2", "--dcp", "2", "--decode-steps", "4"]])
    func goldenCheckpointsThroughTheLayouts(layout: [String]) throws {
        for name in ["gated_sigmoid_bias", "yarn_v5_ungated"] {
            let dir = Fixtures.golden(name)
            let out = try Fixtures.scratch("layout").appendingPathComponent("o.safetensors").path
            let r = MPIJob.run(ranks: 4, ["run", "--model", dir, "--input", dir + "/input.safetensors", "--output", out] + layout, timeout: 60)
            #expect(r.status == 0 && r.stdout.contains("PASS"), "\(name) \(layout): \(r)")
            let got = try Fixtures.output(out)
            let expected = try SafeTensorsFile(path: dir + "/expected.safetensors").readFloats("attn_output")
            let scale = expected.map(abs).max() ?? 1
            #expect(got.count == expected.count && zip(got, expected).allSatisfy { abs($0 - $1) / scale < 1e-4 }, "\(name) \(layout)")
        }
    }

    /// Bad combinations are config errors naming the numbers; the naive path refuses DCP.
    @Test func badCombinationsNameTheNumbers() {
        for (ranks, args, code, needles) in [
            (4, ["--dp", "3"], Int32(3), ["--dp 3", "4 ranks", "1, 2, 4"]),
            (4, ["--dcp", "3"], 3, ["--dcp 3", "4 ranks", "1, 2, 4"]),
            (4, ["--dp", "2", "--dcp", "4"], 3, ["--dcp 4", "2 ranks"]),
            (6, ["--dp", "2"], 3, ["num_attention_heads = 8", "tp=3"]),
            (4, ["--dcp", "2", "--decode", "naive"], 2, ["--decode naive", "--dcp"]),
            (2, ["--dp", "0"], 2, ["--dp 0"]),
        ] as [(Int, [String], Int32, [String])] {
            let r = MPIJob.run(ranks: ranks, ["run"] + args, timeout: 30)
            #expect(r.status == code && !r.timedOut && r.seconds < 10, "\(args): \(r)")
            for n in needles { #expect(r.stderr.contains(n), "\(args): should mention \(n): \(r)") }
            #expect(r.stderr.split(separator: "\n").filter { $0.hasPrefix("mla-tp: rank") }.count == 1, "\(args): one line: \(r)")
        }
    }

    /// A rank of an empty group that fails alone still ends the whole job promptly.
    @Test func aFailureInAnEmptyGroupEndsEveryRank() {
        let r = MPIJob.run(ranks: 4, ["run", "--dp", "4", "--seqs", "9"], timeout: 30,
                           environment: ["MLATP_FAULT": "error", "MLATP_FAULT_RANK": "3"])
        #expect(r.status == 4 && !r.timedOut && r.seconds < 10, "\(r)")
        #expect(r.stderr.contains("injected fault"), "\(r)")
    }
}

/// `plan --layouts` counts what a run of the same layout counts on its busiest rank (rank 0):
/// FLOPs, and the bytes it contributes to each collective, for a prefill and one decode step.
@Suite(.serialized, .tags(.mpirun), .skippedInFastLane) struct LayoutPlanTests {
    @Test(arguments: ["tp4", "dp2xtp2", "dp4", "tp4-dcp2", "tp4-dcp4", "dp2xtp2-dcp2", "tp4-latcol", "tp4-latseq", "dp2xtp2-latcol",
                      "tp4-dcp2-latseq", "tp4-dcp4-latcol"])
    func planEqualsWhatTheRunCounts(layout: String) throws {
        let (context, batch) = (11, 3)
        let plan = MPIJob.single(["plan", "--ranks", "4", "--layouts", layout, "--context", "\(context)", "--batch", "\(batch)", "--json"], timeout: 30)
        #expect(plan.status == 0, "\(plan)")
        let row = try #require(try plan.decoded(LayoutPlanReport.self).layouts.first?.plan)
        let l = try ParallelLayoutArgs(layout)
        let run = MPIJob.run(ranks: 4, ["run", "--dp", "\(l.dp)", "--dcp", "\(l.dcp)", "--latent-proj", l.latent, "--seqs", Array(repeating: "\(context + 1)", count: batch).joined(separator: ","),
                                        "--decode-steps", "1", "--no-check", "--json"], timeout: 60)
        #expect(run.status == 0, "\(run)")
        let report = try run.decoded(RunReport.self)
        #expect(report.flops == row.prefill.totalFlops + row.decode.totalFlops,
                "\(layout): counted \(report.flops), plan \(row.prefill.totalFlops) + \(row.decode.totalFlops)")
        // Bytes rank 0 contributed, by kind, against the plan's prefill + decode step.
        let counted = Dictionary((report.ranks.first?.communicators ?? []).flatMap(\.kinds).map { ($0.kind.rawValue, $0.bytes) }, uniquingKeysWith: +)
        var planned: [String: Int] = [:]
        for c in row.prefillCollectives + row.decodeCollectives {
            let kind = ["allreduce": "reduce", "all-gather": "gather", "reduce-scatter": "scatter"][c.kind]!
            planned[kind, default: 0] += c.bytes
        }
        #expect(report.ranks.first?.bytes == row.weightBytesPerRank, "\(layout): rank 0 holds \(report.ranks.first?.bytes ?? 0) bytes, plan \(row.weightBytesPerRank)")
        if l.dp > 1 || l.dcp > 1 || l.latent != "replicated" {
            for (kind, bytes) in planned { #expect(counted[kind] == bytes, "\(layout) \(kind): counted \(String(describing: counted[kind])), plan \(bytes)") }
        }
        // The cache: the busiest rank holds what the plan says, after the decode step's token.
        let cached = try #require(report.ranks.first?.cachedTokens)
        #expect(cached * 4 * (64 + 16) >= row.kvBytesPerRank && cached * 4 * (64 + 16) <= row.kvBytesPerRank + row.sequencesPerGroup * 4 * (64 + 16),
                "\(layout): \(cached) tokens cached vs plan \(row.kvBytesPerRank) bytes")
    }

    @Test func tp8DuplicatesTheCacheEightTimesAndDcp8AndDp8RemoveIt() throws {
        let r = MPIJob.single(["plan", "--preset", "deepseek-v3", "--ranks", "8", "--layouts", "tp8,tp8-dcp8,dp8", "--context", "32768",
                               "--batch", "64", "--json"], timeout: 30)
        #expect(r.status == 0, "\(r)")
        let rows = try r.decoded(LayoutPlanReport.self).layouts.map(\.plan)
        #expect(rows.map(\.layout) == ["tp8", "tp8-dcp8", "dp8"])
        #expect(rows[0].kvBytesPerRank == 64 * 32768 * (512 + 64) * 4)
        #expect(rows[1].kvBytesPerRank * 8 == rows[0].kvBytesPerRank && rows[2].kvBytesPerRank * 8 == rows[0].kvBytesPerRank)
        let text = MPIJob.single(["plan", "--preset", "deepseek-v3", "--ranks", "8", "--layouts", "tp8,tp8-dcp8,dp8", "--context", "32768", "--batch", "64"], timeout: 30)
        #expect(text.stdout.contains("tp8-dcp8 0.125×, dp8 0.125×"), "\(text)")
    }

    /// Without --batch the layouts are compared on one sequence per rank: a batch of one would
    /// leave dp8's other seven groups idle and its busiest rank holding tp8's cache.
    @Test func theDefaultBatchGivesEveryDPGroupASequence() throws {
        let r = MPIJob.single(["plan", "--preset", "deepseek-v3", "--ranks", "8", "--layouts", "tp8,tp8-dcp8,dp8"], timeout: 30)
        #expect(r.status == 0, "\(r)")
        #expect(r.stdout.contains("batch 8 × context 4096"), "\(r)")
        #expect(r.stdout.contains("tp8-dcp8 0.125×, dp8 0.125×"), "\(r)")
        let one = MPIJob.single(["plan", "--preset", "deepseek-v3", "--ranks", "8", "--layouts", "tp8,dp8", "--batch", "1"], timeout: 30)
        #expect(one.stdout.contains("dp8 1×"), "an explicit batch of one is planned as given: \(one)")
    }

    @Test func badLayoutsAreConfigOrUsageErrors() {
        for (args, code, needle) in [(["--ranks", "8", "--layouts", "tp4"], Int32(3), "4 ranks, not the 8"),
                                     (["--ranks", "8", "--layouts", "tp8-dcp3"], 3, "tp8-dcp3 splits each sequence's cache over 3"),
                                     (["--ranks", "8", "--layouts", "pp8"], 3, "tpT, dpD"),
                                     (["--layouts", "tp8"], 2, "--ranks"),
                                     (["--ranks", "16", "--layouts", "tp16"], 3, "more than the 8 attention heads")] as [([String], Int32, String)] {
            let r = MPIJob.single(["plan"] + args, timeout: 30)
            #expect(r.status == code && r.stderr.contains(needle), "\(args): \(r)")
        }
    }
}

/// dp and dcp of a layout name, for building the matching `run` flags.
struct ParallelLayoutArgs {
    var dp = 1, dcp = 1, latent = "replicated"
    init(_ name: String) throws {
        if name.hasSuffix("-latcol") { latent = "column" }
        if name.hasSuffix("-latseq") { latent = "sequence" }
        if let m = name.firstMatch(of: /dp(\d+)/) { dp = Int(m.1)! }
        if let m = name.firstMatch(of: /dcp(\d+)/) { dcp = Int(m.1)! }
    }
}
