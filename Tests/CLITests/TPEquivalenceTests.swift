import Foundation
import Measure
import MLA
import Report
import Testing
import TestSupport

/// The TP regression grid: every value of every axis, every tp for the default, each a real
/// `mpirun -n K mla-tp` whose output must equal the unsharded forward within 1e-5 relative.
@Suite(.serialized, .tags(.mpirun), .skippedInFastLane) struct TPEquivalenceTests {
    static let cases: [(tp: Int, args: [String])] = [
        (1, []), (2, []), (4, []), (8, []),                                          // every tp, default
        (2, ["--gate", "replicated-sliced"]), (8, ["--gate", "replicated-sliced"]),   // the review's other fix
        (4, ["--act", "scaled_softsign"]),                                            // activation
        (2, ["--set", "use_bias=false"]),                                             // no gate/o_proj bias
        (4, ["--set", "q_lora_rank=null"]),                                           // q_proj instead of LoRA
        (2, ["--set", "rope_interleave=false"]),                                      // NeoX halves
        (8, ["--set", #"rope_scaling={"type":"yarn","factor":40,"original_max_position_embeddings":64,"mscale":0.707,"mscale_all_dim":1.0}"#,
             "--tokens", "40"]),                                                      // YaRN
        (4, ["--set", "use_gated_attn=false"]),                                       // ungated
        (2, ["--set", "attention_bias=true"]),                                        // HF's attention_bias
        (4, ["--seqs", "7,1,12"]),                                                    // a batch of sequences
        (8, ["--gate", "replicated-sliced", "--act", "scaled_softsign", "--set", "use_bias=false",
             "--set", "q_lora_rank=null", "--set", "rope_interleave=false", "--tokens", "70"]),
    ]

    @Test(arguments: cases.indices)
    func tpOutputEqualsUnshardedForward(index: Int) throws {
        let (tp, args) = Self.cases[index]
        let r = MPIJob.run(ranks: tp, args + ["--check", "--json"], timeout: 60)
        #expect(r.status == 0, "\(r)")
        let check = try #require(try r.decoded(RunReport.self).check, "no check in the JSON report: \(r)")
        #expect(check.tolerance == TPCheck.tolerance(for: .f32) && check.relative <= check.tolerance && check.pass,
                "tp=\(tp) \(args): \(check)")
    }

    /// The default job's text shows its own report: each rank's heads, every weight's split,
    /// the allreduce's size and the check's numbers, as `--json` gives them for the same job.
    @Test func defaultMainJobPrintsThePlanTrafficAndCheckOfItsReport() throws {
        let tp = 4
        let text = MPIJob.run(ranks: tp, [], timeout: 60), json = MPIJob.run(ranks: tp, ["--json"], timeout: 60)
        #expect(text.status == 0 && json.status == 0, "\(text)\n\(json)")
        let report = try json.decoded(RunReport.self)
        let heads = try Presets.config(report.preset).numAttentionHeads, part = heads / tp
        #expect(report.ranks.map(\.heads) == (0..<tp).map { [$0 * part, ($0 + 1) * part] }, "each rank holds its own heads, in order")
        for row in report.ranks {
            let line = text.stdout.split(separator: "\n").first { $0.hasPrefix("\(row.rank) ") }
            #expect(line?.contains("\(row.heads[0])..<\(row.heads[1])") == true, "rank \(row.rank)'s heads in the plan: \(text)")
        }
        // Every weight is split along the axis its layout names (column: out-features, the first;
        // row: in-features, the last), and the text prints that table.
        for w in report.plan.weights {
            let g = w.globalShape
            let split: [Int] = switch w.layout.rawValue {
            case "column": [g[0] / tp] + g.dropFirst()
            case "row": g.dropLast() + [g[g.count - 1] / tp]
            default: g
            }
            #expect(w.localShape == split, "\(w.name) (\(w.layout.rawValue)): local \(w.localShape) of \(w.globalShape)")
        }
        #expect(Set(report.plan.weights.map(\.layout.rawValue)) == ["column", "row", "replicated"])
        #expect(text.stdout.contains(report.plan.weightTable()), "the weights table: \(text)")
        #expect(report.allReduceBytes == 4 * report.tokens * report.hidden)
        #expect(text.stdout.contains("1 allreduce (o_proj partial sums) of [\(report.tokens), \(report.hidden)] f32"), "\(text)")
        let check = try #require(report.check, "no check in the report: \(json)")
        #expect(check.pass && check.relative <= check.tolerance, "\(check)")
        #expect(text.stdout.contains(String(format: "relative %.3e (tolerance %.0e)  PASS", check.relative, check.tolerance)), "\(text)")
    }
}

/// FastDeploy's merged layout: a replicated gate fails at tp > 1, clearly and promptly.
@Suite(.serialized, .tags(.mpirun), .skippedInFastLane) struct ReplicatedGateBugTests {
    @Test(arguments: [2, 4, 8])
    func replicatedGateStopsEveryRankWithOneMessage(tp: Int) {
        let r = MPIJob.run(ranks: tp, ["--gate", "replicated"], timeout: 30)
        #expect(r.status == 3, "\(r)")
        #expect(!r.timedOut && r.seconds < 10, "\(r)")
        let local = 8 / tp * 32
        #expect(r.stderr.contains("gate output [16, 256] (all 8 heads × 32)"), "\(r)")
        #expect(r.stderr.contains("attention output [16, \(local)]") && r.stderr.contains("tp=\(tp)"), "\(r)")
        #expect(r.stderr.contains("--gate column"), "\(r)")
        #expect(r.stderr.components(separatedBy: "mla-tp: rank").count == 2, "printed once: \(r)")
        #expect(!r.stdout.contains("PASS"))
    }

    @Test func replicatedGateRunsAndPassesAtTpOne() {
        let r = MPIJob.run(ranks: 1, ["--gate", "replicated", "--check"], timeout: 30)
        #expect(r.status == 0 && r.stdout.contains("PASS"), "\(r)")
    }

    /// `--help` lists every subcommand README's command table names, and `run` as the default.
    @Test func helpExitsZeroAndListsTheSubcommands() throws {
        let r = MPIJob.single(["--help"])
        #expect(r.status == 0 && r.stderr.isEmpty, "\(r)")
        let listed = r.stdout.components(separatedBy: "SUBCOMMANDS:").dropFirst().first?.split(separator: "\n")
            .filter { $0.hasPrefix("  ") && !$0.hasPrefix("   ") }.compactMap { $0.split(separator: " ").first.map(String.init) } ?? []
        let readme = try String(contentsOfFile: MPIJob.repository + "/README.md", encoding: .utf8)
        let documented = Set(readme.matches(of: /`(?:mpirun -n K )?mla-tp ([a-z][a-z-]*)/).map { String($0.output.1) })
        #expect(!documented.isEmpty && documented.isSubset(of: listed), "README names \(documented.sorted()), --help lists \(listed): \(r)")
        #expect(r.stdout.contains("  run (default) "), "\(r)")
    }

    @Test(arguments: [1, 2, 4])
    func emptyBatchReturnsZeroRowsOnEveryRankWithoutHanging(tp: Int) {
        for args in [["--tokens", "0"], ["--seqs", "0,0"]] {
            let r = MPIJob.run(ranks: tp, args + ["--check"], timeout: 30)
            #expect(r.status == 0 && !r.timedOut && r.stdout.contains("0 tokens") && r.stdout.contains("PASS"), "\(r)")
        }
    }

    @Test func singleProcessWithoutMpirunWorks() {
        let r = MPIJob.single(["--tokens", "5"], timeout: 30)
        #expect(r.status == 0 && r.stdout.contains("tp=1") && r.stdout.contains("PASS"), "\(r)")
    }
}
