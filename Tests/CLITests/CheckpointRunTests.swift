import Foundation
import Report
import SafeTensors
import TensorParallel
import Testing
import TestSupport

/// `mla-tp run --model …` on committed checkpoints written by HF tools, under real mpirun.
@Suite(.serialized, .tags(.mpirun), .skippedInFastLane) struct CheckpointRunTests {
    static let cases: [(name: String, tp: Int, layer: Int)] = [
        ("gated_sigmoid_bias", 1, 0), ("gated_sigmoid_bias", 2, 0), ("gated_sigmoid_bias", 4, 0),
        ("yarn_legacy_layer1", 4, 1),             // a layer other than 0, the legacy rope_scaling form
        ("yarn_v5_ungated", 2, 0),                // the transformers-5 rope_parameters form
        ("gated_softsign_noqlora_neox", 4, 0),
        ("hf_save_pretrained", 2, 0),             // BF16, written by save_pretrained, whole model in the file
        ("hf_sharded_index", 4, 0),               // index.json, the layer split across shard files
        ("fp8_block", 2, 0), ("fp8_block", 4, 0), // F8_E4M3 with 128×128 block scales
    ]

    @Test(arguments: cases.indices)
    func tpRunOnCommittedCheckpointEqualsGoldenOutput(index: Int) throws {
        let (name, tp, layer) = Self.cases[index]
        let dir = Fixtures.golden(name)
        let out = try Fixtures.scratch("out").appendingPathComponent("out.safetensors").path
        let r = MPIJob.run(ranks: tp, ["run", "--model", dir, "--layer", "\(layer)", "--input", dir + "/input.safetensors",
                                       "--output", out], timeout: 60)
        #expect(r.status == 0, "\(r)")
        let got = try Fixtures.output(out)
        let expected = try SafeTensorsFile(path: dir + "/expected.safetensors").readFloats("attn_output")
        let scale = expected.map(abs).max() ?? 1
        let worst = zip(got, expected).map { abs($0 - $1) }.max() ?? .infinity
        #expect(got.count == expected.count && worst / scale < 1e-4, "\(name) tp=\(tp): relative \(worst / scale)")
        let meta = try SafeTensorsFile(path: out).metadata
        #expect(meta["tp"] == "\(tp)" && meta["gate"] == "column" && meta["layer"] == "\(layer)" && meta["config_hash"]?.count == 16)
    }

    @Test func configAndWeightsFlagsWorkLikeModel() throws {
        let dir = Fixtures.golden("gated_sigmoid_bias")
        let r = MPIJob.run(ranks: 2, ["run", "--config", dir + "/config.json", "--weights", dir + "/model.safetensors",
                                      "--input", dir + "/input.safetensors"], timeout: 60)
        #expect(r.status == 0 && r.stdout.contains("PASS"), "\(r)")
    }

    /// Counted reads: at tp=4 each rank reads the replicated tensors plus 1/4 of every sharded one.
    @Test func eachRankReadsOnlyItsShardOfTheCheckpoint() throws {
        let dir = try Fixtures.scratch("init")
        let made = MPIJob.single(["init", "--preset", "tiny", "--out", dir.path, "--layers", "2"])
        #expect(made.status == 0, "\(made)")
        let r = MPIJob.run(ranks: 4, ["run", "--model", dir.path, "--layer", "1", "--json"], timeout: 60)
        #expect(r.status == 0, "\(r)")
        let report = try r.decoded(RunReport.self)
        func bytes(_ layout: Layout) -> Int { report.plan.weights.filter { $0.layout == layout }.reduce(0) { $0 + $1.bytesPerRank } }
        let replicated = bytes(.replicated), sharded = bytes(.column) + bytes(.row)
        // The whole layer in the file: replicated + tp × one rank's shard.
        let layerBytes = replicated + 4 * sharded
        for rank in report.ranks {
            #expect(rank.bytesReadFromFiles == replicated + sharded, "rank \(rank.rank): read \(rank.bytesReadFromFiles) of a \(layerBytes)-byte layer")
        }
        #expect(Double(sharded) / Double(4 * sharded) == 0.25)
    }

    @Test func initCheckpointReproducesTheSeededPresetRun() throws {
        let dir = try Fixtures.scratch("init")
        #expect(MPIJob.single(["init", "--out", dir.path]).status == 0)
        let a = try Fixtures.scratch("a").appendingPathComponent("a.safetensors").path
        let b = try Fixtures.scratch("b").appendingPathComponent("b.safetensors").path
        #expect(MPIJob.run(ranks: 2, ["run", "--model", dir.path, "--output", a]).status == 0)
        #expect(MPIJob.run(ranks: 4, ["run", "--preset", "tiny", "--output", b]).status == 0)
        let x = try Fixtures.output(a), y = try Fixtures.output(b)
        #expect(x.count == 16 * 256 && zip(x, y).allSatisfy { abs($0 - $1) <= 1e-5 * max(1, abs($1)) })
    }

    @Test func bf16InitCheckpointRunsAndReadsHalfTheBytes() throws {
        let dir = try Fixtures.scratch("bf16")
        #expect(MPIJob.single(["init", "--out", dir.path, "--dtype", "bf16"]).status == 0)
        let r = MPIJob.run(ranks: 2, ["run", "--model", dir.path, "--json"], timeout: 60)
        #expect(r.status == 0, "\(r)")
        #expect(try r.decoded(RunReport.self).ranks.allSatisfy { $0.bytesReadFromFiles * 2 == $0.bytes })
    }
}
