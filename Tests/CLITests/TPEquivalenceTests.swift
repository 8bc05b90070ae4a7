import Foundation
import Report
import Testing
import TestSupport

/// The TP regression grid: every value of every axis, every tp for the default, each a real
/// `mpirun -n K mla-tp` whose output must equal the unsharded forward within 1e-5 relative.
@Suite(.serialized) struct TPEquivalenceTests {
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
        let rel = try #require(try r.decoded(RunReport.self).check?.relative, "no check in the JSON report: \(r)")
        #expect(rel <= 1e-5, "tp=\(tp) \(args): relative error \(rel)")
    }

    @Test func defaultMainJobPrintsPlanTrafficAndAPassingCheck() {
        let r = MPIJob.run(ranks: 4, [], timeout: 60)
        #expect(r.status == 0, "\(r)")
        for needle in ["Per-rank plan", "0..<2", "6..<8", "q_b_proj.weight", "column", "row", "replicated",
                       "Collective traffic per forward", "allreduce", "PASS"] {
            #expect(r.stdout.contains(needle), "missing \(needle): \(r)")
        }
    }
}

/// FastDeploy's merged layout: a replicated gate fails at tp > 1, clearly and promptly.
@Suite(.serialized) struct ReplicatedGateBugTests {
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

    @Test func helpExitsZeroAndListsTheSubcommands() {
        let r = MPIJob.single(["--help"])
        #expect(r.status == 0 && r.stdout.contains("run") && r.stdout.contains("init") && r.stderr.isEmpty, "\(r)")
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
