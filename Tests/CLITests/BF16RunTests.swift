import Foundation
import MLA
import Report
import SafeTensors
import Testing
import TestSupport

/// `--dtype bf16` under real mpirun: the two checks, the golden bound at every tp with either
/// allreduce, bf16 checkpoints held as stored, the seeded preset equal to its bf16 checkpoint, the
/// layouts, the diagnose self-test of the bf16 allreduce, and the usage errors.
@Suite(.serialized, .tags(.mpirun), .skippedInFastLane) struct BF16RunTests {
    static let cases = ["gated_sigmoid_bias", "gated_softsign_noqlora_neox", "yarn_legacy_layer1", "yarn_v5_ungated",
                        "hf_save_pretrained", "hf_sharded_index", "fp8_block"]

    /// HF's own bf16 error against float64 (precision.json), and the case's float64 output.
    static func golden(_ name: String) throws -> (hf: Float, f64: [Float], heads: Int, layer: Int) {
        let dir = Fixtures.golden(name)
        let doc = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/precision.json"))) as? [String: Any]
        let hf = ((doc?["bf16"] as? [String: Any])?["vs_f64"] as? [String: Any])?["relative"] as? Double ?? .nan
        let config = try MLAConfig.load(path: dir + "/config.json")
        return (Float(hf), try SafeTensorsFile(path: dir + "/expected_f64.safetensors").readFloats("attn_output"),
                config.numAttentionHeads, name == "yarn_legacy_layer1" ? 1 : 0)
    }

    /// Runs case `name` at `tp` in bf16 and holds its error against float64 to 0.25–1.5× HF's own.
    static func checkGolden(_ name: String, tp: Int, extra: [String]) throws {
        let g = try golden(name)
        guard g.heads % tp == 0 else { return }
        let dir = Fixtures.golden(name)
        let out = try Fixtures.scratch("bf16").appendingPathComponent("out.safetensors").path
        let r = MPIJob.run(ranks: tp, ["run", "--model", dir, "--layer", "\(g.layer)", "--input", dir + "/input.safetensors",
                                       "--output", out, "--dtype", "bf16", "--json"] + extra, timeout: 90)
        #expect(r.status == 0, "\(name) tp=\(tp): \(r)")
        let got = try Fixtures.output(out)
        let scale = g.f64.map(abs).max() ?? 1
        let error = (zip(got, g.f64).map { abs($0 - $1) }.max() ?? .infinity) / scale
        #expect(got.count == g.f64.count && error >= 0.25 * g.hf && error <= 1.5 * g.hf,
                "\(name) tp=\(tp) \(extra): bf16 error \(error), HF's own \(g.hf) (ratio \(error / g.hf))")
        let report = try r.decoded(RunReport.self)
        #expect(report.dtype == .bf16 && report.precisionCheck != nil && report.check?.pass == true, "\(name) tp=\(tp)")
    }

    @Test func fourRanksInBF16PrintBothChecksAndExitZero() {
        let r = MPIJob.run(ranks: 4, ["--dtype", "bf16"], timeout: 60)
        #expect(r.status == 0, "\(r)")
        for needle in ["Check against the unsharded forward in bf16 (tp = 1 in bf16): ", "bit-identical to it: ",
                       "Check against the unsharded forward in f32: ", "Kernels on rank 0", "allreduce in bf16", "reduced in bf16"] {
            #expect(r.stdout.contains(needle), "missing \(needle): \(r.stdout)")
        }
        #expect(r.stdout.components(separatedBy: "PASS").count == 3, "two checks, both PASS: \(r.stdout)")
    }

    @Test(arguments: [1, 2, 4])
    func goldenCasesInBF16StayWithinTransformersBF16Error(tp: Int) throws {
        for name in Self.cases { try Self.checkGolden(name, tp: tp, extra: []) }
    }

    @Test(arguments: [1, 2, 4, 8])
    func withTheF32AllreduceEveryTpStaysWithinTheGoldenBound(tp: Int) throws {
        for name in Self.cases where name != "hf_sharded_index" {     // the same model as hf_save_pretrained
            try Self.checkGolden(name, tp: tp, extra: ["--allreduce-dtype", "f32"])
        }
    }

    @Test func aBF16CheckpointIsHeldAsStoredAtHalfTheBytes() throws {
        let dir = try Fixtures.scratch("bf16ckpt")
        #expect(MPIJob.single(["init", "--out", dir.path, "--dtype", "bf16"]).status == 0)
        let bf16 = MPIJob.run(ranks: 2, ["run", "--model", dir.path, "--dtype", "bf16", "--json"], timeout: 60)
        let f32 = MPIJob.run(ranks: 2, ["run", "--model", dir.path, "--json"], timeout: 60)
        #expect(bf16.status == 0 && f32.status == 0, "\(bf16)\n\(f32)")
        let held = try bf16.decoded(RunReport.self).ranks, widened = try f32.decoded(RunReport.self).ranks
        for (b, f) in zip(held, widened) {
            #expect(b.bytesReadFromFiles == b.bytes, "rank \(b.rank): read \(b.bytesReadFromFiles), holds \(b.bytes)")
            #expect(2 * b.bytes == f.bytes, "rank \(b.rank): bf16 holds \(b.bytes), f32 \(f.bytes)")
        }
    }

    /// The seeded preset in bf16 rounds the same seeded values `init --dtype bf16` writes, so the
    /// two give the same bits; and at another tp the same bf16 weights (the outputs within the check).
    @Test func theSeededPresetInBF16EqualsItsBF16Checkpoint() throws {
        let dir = try Fixtures.scratch("bf16seed")
        #expect(MPIJob.single(["init", "--out", dir.path, "--dtype", "bf16"]).status == 0)
        let a = dir.appendingPathComponent("a.safetensors").path, b = dir.appendingPathComponent("b.safetensors").path
        let c = dir.appendingPathComponent("c.safetensors").path
        #expect(MPIJob.run(ranks: 2, ["run", "--model", dir.path, "--dtype", "bf16", "--output", a]).status == 0)
        #expect(MPIJob.run(ranks: 2, ["run", "--preset", "tiny", "--dtype", "bf16", "--output", b]).status == 0)
        #expect(MPIJob.run(ranks: 4, ["run", "--preset", "tiny", "--dtype", "bf16", "--allreduce-dtype", "f32", "--output", c]).status == 0)
        let x = try Fixtures.output(a), y = try Fixtures.output(b), z = try Fixtures.output(c)
        #expect(x.count == 16 * 256 && x.elementsEqual(y) { $0.bitPattern == $1.bitPattern })
        let scale = x.map(abs).max() ?? 1
        #expect((zip(x, z).map { abs($0 - $1) }.max() ?? 1) / scale < 0x1p-5)
    }

    @Test(arguments: [["--dcp", "2", "--seqs", "7,12", "--decode-steps", "3"], ["--dp", "2", "--seqs", "7,1,12,5"],
                      ["--seqs", "9,5", "--decode-steps", "3", "--decode", "naive", "--prefill-chunk", "3"],
                      ["--preset", "tiny-headwise-packed", "--seqs", "7,1", "--decode-steps", "2"]])
    func layoutsServingAndGateFormsRunAndPassInBF16(args: [String]) throws {
        let r = MPIJob.run(ranks: 4, ["run", "--dtype", "bf16", "--json"] + args, timeout: 90)
        #expect(r.status == 0, "\(args): \(r)")
        let report = try r.decoded(RunReport.self)
        #expect(report.check?.pass == true && report.precisionCheck?.f32.pass == true, "\(args)")
    }

    /// The diagnose self-test of the bf16 allreduce, through the window (where it applies) and
    /// through MPI, over odd lengths and fewer values than ranks: every rank's result equals
    /// `BF16Reduction`'s rank-order sum bit for bit (with three or more ranks the order of the
    /// additions shows in the bits), and on the MPI path each rank's counted `sentBytes` is its
    /// ring share, 2(p−1)·Σn values over the ranks, not the (p−1)·Σn per rank of gathering every partial.
    @Test(arguments: [2, 3, 4])
    func theBF16AllreduceGivesTheRankOrderBitsWithARingsTraffic(ranks: Int) throws {
        let r = MPIJob.run(ranks: ranks, ["diagnose"], timeout: 90)
        #expect(r.status == 0, "\(r)")
        let lines = r.stdout.split(separator: "\n").map(String.init).filter { $0.hasPrefix("bf16 allreduce") }
        #expect(lines.count == 2 && lines.allSatisfy { $0.contains("0 elements off the rank-order sum, 0 ranks with other bits;") && $0.hasSuffix("  PASS") }, "\(r)")
        let mpi = try #require(lines.first { $0.contains("MPI_Alltoallv + MPI_Allgatherv") }, "no MPI path: \(r)")
        let number = { (after: String) throws -> Int in
            let tail = try #require(mpi.range(of: after).map { mpi[$0.upperBound...] }, "no \"\(after)\" in \(mpi)")
            return try #require(Int(tail.prefix { $0.isNumber }), "no number after \"\(after)\" in \(mpi)")
        }
        let values = try number("values ("), sent = try number("bytes sent ")
        #expect(values > 0 && sent == 2 * 2 * (ranks - 1) * values, "tp=\(ranks): \(sent) bytes for \(values) values: \(mpi)")
        #expect(mpi.contains(", 0 ranks off their ring share"), "\(mpi)")
        if ranks > 2 { #expect(sent < 2 * (ranks - 1) * ranks * values, "no less than gathering every partial: \(mpi)") }
    }

    @Test(arguments: [(["run", "--allreduce-dtype", "bf16"], "--dtype bf16"), (["run", "--dtype", "fp16"], "bf16"),
                      (["bench", "--torch-baseline", "t.json"], "--dtype bf16"), (["sweep", "--allreduce-dtype", "bf16"], "--dtype bf16")])
    func aWrongPrecisionFlagIsAUsageError(args: [String], hint: String) {
        let r = MPIJob.run(ranks: 1, args, timeout: 30)
        #expect(r.status == 2 && r.stderr.contains(hint), "\(args): \(r)")
    }
}
