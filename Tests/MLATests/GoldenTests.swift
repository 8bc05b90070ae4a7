import Foundation
import MLA
import SafeTensors
import TensorCore
import TensorParallel
import Testing

/// Fixtures written by HF transformers' own `DeepseekV3Attention` (scripts/golden/make_golden.py).
enum Golden {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures/golden")
    static let cases = ["gated_sigmoid_bias", "gated_softsign_noqlora_neox", "yarn_legacy_layer1", "yarn_v5_ungated",
                        "hf_save_pretrained", "hf_sharded_index", "fp8_block"]

    /// One case per gate form (float64 expected outputs only), and the forward's error bound on them.
    static let gateCases = ["gate_head_separate_sigmoid_bias", "gate_head_separate_softplus_nobias", "gate_element_packed_sigmoid",
                            "gate_head_packed_scaled_softsign", "gate_element_packed_softplus_noqlora", "gate_element_separate_softplus"]

    static func dir(_ name: String) -> String { root.appendingPathComponent(name).path }

    /// The layer each case's expected output is for.
    static func layer(_ name: String) -> Int { name == "yarn_legacy_layer1" ? 1 : 0 }

    /// The f32 expected output, or the float64 one (read as Float) where the case has only that.
    static func expected(_ name: String) throws -> Matrix {
        let f32 = dir(name) + "/expected.safetensors"
        let file = try SafeTensorsFile(path: FileManager.default.fileExists(atPath: f32) ? f32 : dir(name) + "/expected_f64.safetensors")
        let shape = try file.info("attn_output").shape
        return try Matrix(rows: shape[0], cols: shape[1], values: try file.readFloats("attn_output"))
    }
}

@Suite struct GoldenTests {
    @Test(arguments: Golden.cases + Golden.gateCases)
    func forwardMatchesTransformersWithinOneInTenThousand(name: String) throws {
        let dir = Golden.dir(name)
        let config = try MLAConfig.load(path: dir + "/config.json")
        let weights = try CheckpointWeights(path: dir, config: config)
        let input = try InputFile(path: dir + "/input.safetensors", hiddenSize: config.hiddenSize).load()
        let layer = try MLAAttention(config: config, layer: Golden.layer(name), shard: .whole, source: weights)
        let out = try layer.forward(input.hiddenStates, batch: input.batch, collectives: .local)
        let cmp = try Comparison(out, reference: try Golden.expected(name))
        #expect(cmp.relative < 1e-4, "\(name): max |Δ| \(cmp.maxAbsDiff), relative \(cmp.relative)")
    }

    /// Every rank's shard of every case, put back together through the row-parallel sum,
    /// equals the same golden output (the in-process form of the mpirun tests).
    @Test(arguments: [2, 4])
    func shardsOfEveryCaseRecombineToTheGoldenOutput(tp: Int) throws {
        for name in Golden.cases + Golden.gateCases {
            let dir = Golden.dir(name)
            let config = try MLAConfig.load(path: dir + "/config.json")
            guard config.numAttentionHeads % tp == 0 else { continue }
            let input = try InputFile(path: dir + "/input.safetensors", hiddenSize: config.hiddenSize).load()
            var sum = Matrix(rows: input.hiddenStates.rows, cols: config.hiddenSize)
            var bias: [Float]? = nil
            for r in 0..<tp {
                let weights = try CheckpointWeights(path: dir, config: config)
                let layer = try MLAAttention(config: config, layer: Golden.layer(name), shard: Shard(rank: r, size: tp), source: weights)
                let part = try layer.forwardPartial(input.hiddenStates, batch: input.batch)
                for k in sum.storage.indices { sum.storage[k] += part.storage[k] }
                bias = layer.outputBias
            }
            if let bias { try sum.addRowBias(bias) }
            let cmp = try Comparison(sum, reference: try Golden.expected(name))
            #expect(cmp.relative < 1e-4, "\(name) tp=\(tp): relative \(cmp.relative)")
        }
    }

    @Test func checkpointOnlyReadsTheAttentionTensorsOfTheLayer() throws {
        let dir = Golden.dir("yarn_legacy_layer1")
        let config = try MLAConfig.load(path: dir + "/config.json")
        let weights = try CheckpointWeights(path: dir, config: config)
        let layer = try MLAAttention(config: config, layer: 1, shard: .whole, source: weights)
        #expect(weights.bytesRead == layer.weightBytes, "bytes read equal the f32 bytes of layer 1's attention, nothing else")
    }
}
