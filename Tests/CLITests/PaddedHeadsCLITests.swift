import Foundation
import Report
import SafeTensors
import TensorParallel
import Testing
import TestSupport

/// `--pad-heads`: a tp that does not divide the heads pads them with zero heads (SGLang's way),
/// and the run still gives the unsharded answer; the plan counts what the run counts.
@Suite(.serialized, .tags(.mpirun), .skippedInFastLane) struct PaddedHeadsCLITests {
    static let matrix: [(tp: Int, args: [String])] = [
        (3, []), (6, []), (3, ["--dtype", "bf16"]), (5, ["--seqs", "9,3", "--decode-steps", "2"]),
        (3, ["--preset", "deepseek-v2-lite", "--tokens", "8"]), (6, ["--preset", "deepseek-v2-lite", "--tokens", "8"]),
        (3, ["--set", "gated_attn_placement=\"packed\""]), (3, ["--set", "gated_attn_granularity=\"head\""]),
        (6, ["--dcp", "2", "--seqs", "9,3", "--decode-steps", "2"]), (6, ["--dp", "2", "--seqs", "9,3,4", "--decode-steps", "2"]),
        (3, ["--latent-proj", "sequence", "--seqs", "9,3"]), (6, ["--decode", "naive", "--seqs", "9,3", "--decode-steps", "2"]),
    ]

    @Test(arguments: matrix.indices)
    func paddedHeadsGiveTheUnshardedAnswer(index: Int) throws {
        let (tp, args) = Self.matrix[index]
        let r = MPIJob.run(ranks: tp, ["run", "--pad-heads", "--json"] + args, timeout: 90)
        #expect(r.status == 0, "tp\(tp) \(args): \(r)")
        let report = try r.decoded(RunReport.self)
        #expect(report.check?.pass == true, "tp\(tp) \(args)")
        let heads = report.plan.modelHeads ?? 0, groups = report.dp ?? 1
        #expect(report.plan.paddedHeads == (heads + report.tp - 1) / report.tp * report.tp && report.plan.paddingBytes > 0)
        // Every real head is held once per DP group, in order.
        let held = report.ranks.flatMap { Array($0.heads[0] ..< $0.heads[1]) }
        #expect(held.count == heads * groups && Set(held) == Set(0..<heads), "\(held)")
    }

    /// Each committed golden at tp 3 (its 8 heads padded to 9; fp8_block's 4 to 6): within 1e-4.
    @Test func goldensPassThroughPaddedHeads() throws {
        for name in ["gated_sigmoid_bias", "gated_softsign_noqlora_neox", "yarn_legacy_layer1", "hf_sharded_index", "fp8_block",
                     "gate_head_packed_scaled_softsign", "gate_element_separate_softplus"] {
            let dir = Fixtures.golden(name), layer = name == "yarn_legacy_layer1" ? 1 : 0
            let out = try Fixtures.scratch("padded").appendingPathComponent("out.safetensors").path
            let r = MPIJob.run(ranks: 3, ["run", "--pad-heads", "--model", dir, "--layer", "\(layer)", "--input", dir + "/input.safetensors",
                                          "--output", out], timeout: 60)
            #expect(r.status == 0, "\(name): \(r)")
            let err = try Fixtures.goldenError(name, output: out)
            #expect(err.map { $0 < 1e-4 } == true, "\(name): relative \(String(describing: err))")
        }
    }

    /// `plan --layouts tp3` (padded) counts the FLOPs and weight bytes a `run --pad-heads` at tp 3 counts.
    @Test(arguments: ["tp3", "tp3-latseq", "tp6"])
    func planOfAPaddedLayoutEqualsWhatTheRunCounts(layout: String) throws {
        let tp = layout.hasPrefix("tp6") ? 6 : 3, latent = layout.hasSuffix("latseq") ? "sequence" : "replicated"
        let plan = MPIJob.single(["plan", "--ranks", "\(tp)", "--layouts", layout, "--context", "11", "--batch", "2", "--json"], timeout: 30)
        let row = try #require(try plan.decoded(LayoutPlanReport.self).layouts.first?.plan)
        #expect(row.padding?.paddedHeads == (tp == 3 ? 9 : 12), "\(String(describing: row.padding))")
        let run = MPIJob.run(ranks: tp, ["run", "--pad-heads", "--latent-proj", latent, "--seqs", "12,12", "--decode-steps", "1", "--no-check", "--json"],
                             timeout: 60)
        #expect(run.status == 0, "\(run)")
        let report = try run.decoded(RunReport.self)
        #expect(report.flops == row.prefill.totalFlops + row.decode.totalFlops, "\(layout): counted \(report.flops)")
        #expect(report.ranks.allSatisfy { $0.bytes == row.weightBytesPerRank }, "\(layout): plan \(row.weightBytesPerRank)")
    }

    @Test func whatPaddingCannotServeIsRefusedNamingTheRemedy() {
        for (ranks, args, code, needle) in [
            (3, ["run"], Int32(3), "or add --pad-heads to pad to 9 heads"),
            (16, ["run", "--pad-heads"], 3, "tp=16 is more than the 8 attention heads"),
            (3, ["run", "--pad-heads", "--quantization", "fp8"], 3, "which --quantization fp8 does not support — use --dtype bf16"),
            (3, ["run", "--pad-heads", "--gate", "replicated-sliced"], 3, "which --gate replicated-sliced does not support — use --gate column"),
            (3, ["run", "--pad-heads", "--invariant"], 2, "which tp 3 does not split"),
            (3, ["bench", "--phase", "decode", "--repeat", "1"], 3, "or add --pad-heads"),
            (1, ["plan", "--ranks", "16", "--layouts", "tp16"], 3, "tp=16 is more than the 8 attention heads"),
        ] {
            let r = ranks == 1 ? MPIJob.single(args, timeout: 30) : MPIJob.run(ranks: ranks, args, timeout: 60)
            #expect(r.status == code && r.stderr.contains(needle), "\(args): \(r)")
        }
    }
}
