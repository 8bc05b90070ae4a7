import Foundation
import Report
import SafeTensors
import Testing
import TestSupport

/// Serving shapes under real mpirun: decode steps through the latent cache, chunked prefill,
/// mixed batches and both decode paths equal the full causal forward at every tp.
@Suite(.serialized, .tags(.mpirun), .skippedInFastLane) struct ServingCLITests {
    static let cases: [(tp: Int, args: [String])] = [
        (1, ["--decode-steps", "4"]), (2, ["--decode-steps", "4"]), (4, ["--decode-steps", "4"]), (8, ["--decode-steps", "4"]),
        (2, ["--decode-steps", "3", "--decode", "naive"]),
        (8, ["--decode-steps", "3", "--decode", "naive", "--act", "scaled_softsign"]),
        (4, ["--decode-steps", "5", "--set", "use_gated_attn=false"]),
        (4, ["--seqs", "7,1,12", "--decode-steps", "3", "--act", "scaled_softsign"]),
        (2, ["--seqs", "7,1,12", "--decode-steps", "2", "--prefill-chunk", "3", "--set", "use_gated_attn=false", "--decode", "naive"]),
        // A length-1 sequence decoding in the same forward as a chunk after a long cached prefix.
        (4, ["--seqs", "1,48", "--decode-steps", "1", "--prefill-chunk", "40"]),
        (8, ["--seqs", "1,48", "--decode-steps", "1", "--prefill-chunk", "40", "--set", "use_gated_attn=false", "--decode", "naive"]),
    ]

    @Test(arguments: cases.indices)
    func servedOutputsEqualTheFullForward(index: Int) throws {
        let (tp, args) = Self.cases[index]
        let r = MPIJob.run(ranks: tp, args + ["--check", "--json"], timeout: 60)
        #expect(r.status == 0, "\(r)")
        let report = try r.decoded(RunReport.self)
        let rel = try #require(report.check?.relative, "\(r)")
        #expect(rel <= 1e-5, "tp=\(tp) \(args): \(rel)")
        #expect(report.serving != nil, "\(r)")
    }

    @Test func realCheckpointLayerServedThroughTheCacheMatchesItsGoldenOutput() throws {
        for (name, tp) in [("fp8_block", 2), ("yarn_legacy_layer1", 4)] {
            let dir = Fixtures.golden(name)
            let out = try Fixtures.scratch("serve").appendingPathComponent("o.safetensors").path
            let layer = name == "yarn_legacy_layer1" ? "1" : "0"
            let r = MPIJob.run(ranks: tp, ["run", "--model", dir, "--layer", layer, "--input", dir + "/input.safetensors",
                                           "--output", out, "--decode-steps", "3"], timeout: 60)
            #expect(r.status == 0 && r.stdout.contains("PASS"), "\(r)")
            let got = try Fixtures.output(out)
            let expected = try SafeTensorsFile(path: dir + "/expected.safetensors").readFloats("attn_output")
            let scale = expected.map(abs).max() ?? 1
            #expect(zip(got, expected).allSatisfy { abs($0 - $1) / scale < 1e-4 }, "\(name)")
        }
    }

    @Test func inputWithZeroTokensWritesAnEmptyOutput() throws {
        let dir = try Fixtures.scratch("empty")
        var writer = SafeTensorsWriter()
        try writer.add("hidden_states", floats: [], shape: [0, 64])
        try writer.write(to: dir.appendingPathComponent("in.safetensors").path)
        let out = dir.appendingPathComponent("out.safetensors").path
        for tp in [1, 4] {
            let r = MPIJob.run(ranks: tp, ["run", "--model", Fixtures.golden("gated_sigmoid_bias"), "--input",
                                           dir.appendingPathComponent("in.safetensors").path, "--output", out, "--decode-steps", "2"],
                               timeout: 30)
            #expect(r.status == 0 && !r.timedOut, "\(r)")
            #expect(try SafeTensorsFile(path: out).info("attn_output").shape == [0, 64])
        }
    }
}
