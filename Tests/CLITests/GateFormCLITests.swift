import Foundation
import Report
import SafeTensors
import Testing
import TestSupport

/// Every gate form under real mpirun: the presets, HF's outputs for each form at tp 1, 2, 4 and
/// after decoding through the cache on both paths, and the wrong layouts — a shape mismatch
/// for the replicated head-wise gate, a silent error for the wrong packing order.
@Suite(.serialized, .tags(.mpirun), .skippedInFastLane) struct GateFormCLITests {
    @Test(arguments: ["tiny-headwise", "tiny-packed", "tiny-headwise-packed"])
    func presetsOfEveryFormPassTheirCheck(preset: String) throws {
        for (tp, extra) in [(4, [String]()), (8, ["--act", "softplus"]), (2, ["--set", "use_bias=false", "--seqs", "7,1,12", "--decode-steps", "3"])] {
            let r = MPIJob.run(ranks: tp, ["--preset", preset, "--check", "--json"] + extra, timeout: 60)
            #expect(r.status == 0, "\(preset) tp=\(tp) \(extra): \(r)")
            #expect((try r.decoded(RunReport.self).check?.relative ?? 1) <= 1e-5, "\(preset) tp=\(tp) \(extra)")
        }
    }

    /// HF's float64 output for each form, through the plain forward and through the cache.
    @Test(arguments: ["gate_head_separate_sigmoid_bias", "gate_head_separate_softplus_nobias", "gate_element_packed_sigmoid",
                      "gate_head_packed_scaled_softsign", "gate_element_packed_softplus_noqlora", "gate_element_separate_softplus"])
    func goldenOfEveryFormAtEveryTpAndThroughTheCache(name: String) throws {
        let dir = Fixtures.golden(name)
        let expected = try SafeTensorsFile(path: dir + "/expected_f64.safetensors").readFloats("attn_output")
        let scale = expected.map(abs).max() ?? 1
        for (tp, serving) in [(1, [String]()), (2, []), (4, []), (2, ["--decode-steps", "3"]), (4, ["--decode-steps", "3", "--decode", "naive"]),
                              (4, ["--decode-steps", "2", "--prefill-chunk", "2"])] {
            let out = try Fixtures.scratch("gate").appendingPathComponent("o.safetensors").path
            let r = MPIJob.run(ranks: tp, ["run", "--model", dir, "--input", dir + "/input.safetensors", "--output", out] + serving, timeout: 60)
            #expect(r.status == 0 && r.stdout.contains("PASS"), "\(name) tp=\(tp) \(serving): \(r)")
            let got = try Fixtures.output(out)
            let worst = zip(got, expected).map { abs($0 - $1) / scale }.max() ?? 1
            #expect(got.count == expected.count && worst < 1e-4, "\(name) tp=\(tp) \(serving): relative \(worst)")
        }
    }

    /// The same packed weights stored `[all q | all g]`: read the way they are stored, HF's answer;
    /// split by heads as if interleaved, or an interleaved checkpoint split as if concatenated, the
    /// job runs and its check fails, naming the heads and the packing.
    @Test(arguments: ["gate_element_packed_sigmoid", "gate_head_packed_scaled_softsign", "gate_element_packed_softplus_noqlora"])
    func theWrongPackingOrderRunsAndFailsItsCheckNamingThePacking(name: String) throws {
        let dir = Fixtures.golden(name), input = ["--input", dir + "/input.safetensors"]
        let concatenated = ["run", "--config", dir + "/config.json", "--weights", dir + "/model_concatenated.safetensors",
                            "--set", "gated_attn_packing=concatenated"] + input
        let right = MPIJob.run(ranks: 2, concatenated + ["--check"], timeout: 60)
        #expect(right.status == 0 && right.stdout.contains("PASS"), "\(name) stored concatenated, read so: \(right)")
        for (args, split, stored) in [(concatenated + ["--gate", "packed-as-interleaved"], "interleaved", "concatenated"),
                                      (["run", "--model", dir, "--gate", "packed-as-concatenated"] + input, "concatenated", "interleaved")] {
            let r = MPIJob.run(ranks: 2, args + ["--check"], timeout: 60)
            #expect(r.status == 5 && !r.timedOut && r.seconds < 10, "\(name) \(args): \(r)")
            let lines = r.stderr.split(separator: "\n").filter { $0.hasPrefix("mla-tp: rank") }
            #expect(lines.count == 1, "\(name): one line: \(r)")
            for needle in ["heads 0–7", "packing order", "split as \(split) but stored \(stored)", "--gate column"] {
                #expect(r.stderr.contains(needle), "\(name) should mention \(needle): \(r)")
            }
            #expect(r.stdout.contains("FAIL"), "\(r)")
        }
    }

    @Test func aReplicatedHeadWiseGateIsAShapeMismatchNamingBothShapes() {
        let r = MPIJob.run(ranks: 4, ["--preset", "tiny-headwise", "--gate", "replicated"], timeout: 30)
        #expect(r.status == 3 && !r.timedOut && r.seconds < 10, "\(r)")
        #expect(r.stderr.contains("gate output [16, 8] (all 8 heads × 1)") && r.stderr.contains("attention output [16, 64]"), "\(r)")
        let sliced = MPIJob.run(ranks: 4, ["--preset", "tiny-headwise", "--gate", "replicated-sliced", "--check"], timeout: 30)
        #expect(sliced.status == 0 && sliced.stdout.contains("PASS"), "\(sliced)")
    }

    @Test func gateShapesAndLayoutsThatDoNotFitAreRefused() {
        for (args, code, needles) in [
            (["run", "--model", Fixtures.golden("gate_head_separate_sigmoid_bias"), "--set", "gated_attn_granularity=element"], Int32(4),
             ["gate.weight has shape [8, 64]", "element-wise separate", "[128, 64]", "head-wise separate"]),
            (["run", "--model", Fixtures.golden("gate_element_packed_sigmoid"), "--set", "gated_attn_placement=separate"], 4,
             ["q_b_proj.weight has shape [320, 32]", "element-wise packed"]),
            (["run", "--preset", "tiny-packed", "--gate", "replicated"], 2, ["--gate replicated", "packed"]),
            (["run", "--preset", "tiny", "--gate", "packed-as-interleaved"], 2, ["--gate packed-as-interleaved", "separate"]),
            (["run", "--set", "gated_attn_granularity=channel"], 3, ["channel", "element, head"]),
        ] as [([String], Int32, [String])] {
            let r = MPIJob.run(ranks: 2, args, timeout: 30)
            #expect(r.status == code && !r.timedOut, "\(args): \(r)")
            for n in needles { #expect(r.stderr.contains(n), "\(args) should mention \(n): \(r)") }
        }
    }
}
