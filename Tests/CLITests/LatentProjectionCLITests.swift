import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Report
import SafeTensors
import TensorParallel
import Testing
import TestSupport

/// `--latent-proj column|sequence` (and the layout names' `-latcol` / `-latseq`) under mpirun: the
/// sharded latent down-projections give the unsharded answer, on seeded models and on the
/// transformers goldens, and count what the plan counts.
@Suite(.serialized, .tags(.mpirun), .skippedInFastLane) struct LatentProjectionCLITests {
    static let matrix: [(latent: String, tp: Int, extra: [String])] = [
        ("column", 1, []), ("column", 2, []), ("column", 4, []), ("column", 8, []),
        ("sequence", 2, []), ("sequence", 4, []), ("sequence", 8, ["--seqs", "9,3"]),
        ("column", 2, ["--dtype", "bf16"]), ("sequence", 4, ["--dtype", "bf16", "--seqs", "9,3"]),
        ("column", 2, ["--quantization", "fp8"]),
        ("column", 4, ["--seqs", "9,3,5", "--decode-steps", "2"]), ("column", 4, ["--seqs", "9,3,5", "--decode-steps", "2", "--decode", "naive"]),
        ("sequence", 4, ["--seqs", "9,3,5", "--prefill-chunk", "4", "--decode-steps", "2"]),
        ("column", 4, ["--dp", "2", "--seqs", "9,3,5", "--decode-steps", "2"]), ("sequence", 4, ["--dcp", "2", "--seqs", "9,3,5", "--decode-steps", "2"]),
        ("column", 4, ["--dcp", "4", "--seqs", "9,3", "--decode-steps", "2", "--dtype", "bf16"]),
        ("column", 4, ["--preset", "deepseek-v2-lite", "--tokens", "8"]), ("sequence", 2, ["--preset", "deepseek-v2-lite", "--tokens", "8"]),
        ("column", 4, ["--set", "gated_attn_granularity=\"head\""]), ("sequence", 4, ["--set", "gated_attn_placement=\"packed\""]),
        ("column", 2, ["--set", "use_gated_attn=false"]),
    ]

    /// Every row passes its check against the unsharded forward (tolerance of its precision) and
    /// made the latent all-gather the layout calls for.
    @Test(arguments: matrix.indices)
    func shardedLatentProjectionsGiveTheUnshardedAnswer(index: Int) throws {
        let (latent, tp, extra) = Self.matrix[index]
        let r = MPIJob.run(ranks: tp, ["run", "--latent-proj", latent, "--json"] + extra, timeout: 90)
        #expect(r.status == 0, "\(latent) tp\(tp) \(extra): \(r)")
        let report = try r.decoded(RunReport.self)
        #expect(report.check?.pass == true && report.latent?.rawValue == latent, "\(latent) tp\(tp) \(extra)")
        if tp > 1 { #expect((report.latentGather?.calls ?? 0) >= 1, "\(latent) tp\(tp) \(extra): no latent all-gather was made") }
        if latent == "column" && tp > 1 {
            let down = report.plan.weights.filter { $0.name.contains("_a_proj") && $0.name.hasSuffix(".weight") }
            #expect(!down.isEmpty && down.allSatisfy { $0.layout == .column && $0.localShape[0] * report.tp == $0.globalShape[0] }, "\(down)")
        }
    }

    /// The invariant mode through either sharded form keeps its promise: the same bits as the
    /// unsharded invariant forward (the gather moves values, it computes none).
    @Test(arguments: ["column", "sequence"])
    func invariantModeThroughShardedLatentIsBitIdentical(latent: String) throws {
        for tp in [2, 4] {
            let r = MPIJob.run(ranks: tp, ["run", "--invariant", "--latent-proj", latent, "--seqs", "9,3", "--decode-steps", "2"], timeout: 90)
            #expect(r.status == 0 && r.stdout.contains("bit-identical: yes"), "\(latent) tp\(tp): \(r)")
        }
    }

    /// Every committed transformers golden, each form, at a tp its shapes allow: within 1e-4.
    @Test(arguments: ["column", "sequence"])
    func goldensPassThroughTheShardedLatent(latent: String) throws {
        let names = ["gated_sigmoid_bias", "gated_softsign_noqlora_neox", "yarn_legacy_layer1", "yarn_v5_ungated", "hf_save_pretrained",
                     "hf_sharded_index", "fp8_block", "gate_head_separate_sigmoid_bias", "gate_element_packed_softplus_noqlora"]
        for name in names {
            let dir = Fixtures.golden(name), layer = name == "yarn_legacy_layer1" ? 1 : 0
            let out = try Fixtures.scratch("latent").appendingPathComponent("out.safetensors").path
            let r = MPIJob.run(ranks: 4, ["run", "--model", dir, "--layer", "\(layer)", "--input", dir + "/input.safetensors",
                                          "--latent-proj", latent, "--output", out], timeout: 60)
            #expect(r.status == 0, "\(name): \(r)")
            let err = try Fixtures.goldenError(name, output: out)
            #expect(err.map { $0 < 1e-4 } == true, "\(name) \(latent): relative \(String(describing: err))")
        }
    }

    /// `--latent-proj sequence` in a step with fewer tokens than ranks, and in decode steps,
    /// computes the latent replicated and makes no all-gather (documented in docs/layouts.md).
    @Test func sequenceFormWithFewerTokensThanRanksComputesReplicated() throws {
        let r = MPIJob.run(ranks: 4, ["run", "--latent-proj", "sequence", "--tokens", "3", "--json"], timeout: 60)
        #expect(r.status == 0, "\(r)")
        let report = try r.decoded(RunReport.self)
        #expect(report.check?.pass == true && report.latentGather == nil, "\(String(describing: report.latentGather))")
        let text = MPIJob.run(ranks: 4, ["run", "--latent-proj", "sequence", "--tokens", "3"], timeout: 60)
        #expect(text.stdout.contains("Latent all-gather: none in this run (every step had fewer tokens than ranks"), "\(text)")
        // Prefill of 4 tokens splits (one each); its decode steps do not: one gather in all.
        let served = MPIJob.run(ranks: 4, ["run", "--latent-proj", "sequence", "--tokens", "6", "--decode-steps", "2", "--json"], timeout: 60)
        #expect(try served.decoded(RunReport.self).latentGather?.calls == 1, "\(served)")
    }

    @Test func badLatentChoicesAreRefusedWithTheirClass() {
        for (ranks, args, code, needle) in [
            (2, ["run", "--latent-proj", "rows"], Int32(2), "'--latent-proj"),
            (2, ["run", "--latent-proj", ""], 2, "'--latent-proj"),
            (8, ["run", "--latent-proj", "column", "--set", "q_lora_rank=100"], 3, "splits q_a_proj's 100 outputs over tp=8"),
            (8, ["run", "--latent-proj", "column", "--set", "kv_lora_rank=60"], 3, "kv_a_proj_with_mqa's 76 outputs over tp=8"),
            (1, ["plan", "--ranks", "8", "--layouts", "tp8-latrow"], 3, "-latcol or -latseq"),
            (1, ["plan", "--ranks", "8", "--layouts", "tp8-latcol-dcp2"], 3, "-latcol or -latseq"),
            (1, ["plan", "--ranks", "8", "--layouts", "tp8-latcol", "--set", "q_lora_rank=100"], 3, "use --latent-proj replicated or sequence"),
            (2, ["bench", "--latent-proj", "column", "--set", "kv_lora_rank=61", "--phase", "decode"], 3, "kv_a_proj_with_mqa's 77 outputs"),
        ] {
            let r = ranks == 1 ? MPIJob.single(args, timeout: 30) : MPIJob.run(ranks: ranks, args, timeout: 60)
            #expect(r.status == code && r.stderr.contains(needle), "\(args): \(r)")
            #expect(r.stderr.split(separator: "\n").filter { $0.hasPrefix("mla-tp:") }.count == 1, "one line: \(r.stderr)")
        }
    }

    /// `plan --layouts` with a -latcol layout and a hardware model prints where it stops winning
    /// and draws it beside the bytes figure.
    @Test func planPrintsAndDrawsTheLatentCrossover() throws {
        let dir = try Fixtures.scratch("crossover")
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = MPIJob.single(["plan", "--preset", "deepseek-v3", "--ranks", "8", "--layouts", "tp8,tp8-latcol,tp8-latseq", "--context", "4096",
                               "--batch", "8", "--hardware", "h100", "--dtype", "bf16", "--figure", dir.appendingPathComponent("bytes.svg").path],
                              timeout: 30)
        #expect(r.status == 0 && r.stdout.contains("tp8-latcol against tp8: "), "\(r)")
        let svg = try String(contentsOf: dir.appendingPathComponent("latent-crossover.svg"), encoding: .utf8)
        #expect(XMLParser(data: Data(svg.utf8)).parse() && svg.contains("tp8-latcol"), "latent-crossover.svg")
    }
}
