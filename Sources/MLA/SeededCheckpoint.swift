import Foundation
import SafeTensors
import TensorParallel

/// An HF-layout checkpoint written from the seeded TP-independent weights: `config.json` and
/// `model.safetensors` with `model.layers.{L}.self_attn.*` for every layer, so the real-file
/// path can be tried without downloading anything.
public enum SeededCheckpoint {
    /// Weight dtypes `init` writes.
    public enum WeightType: String, CaseIterable, Sendable {
        case f32, bf16, f16

        var dtype: DType { switch self { case .f32: .F32; case .bf16: .BF16; case .f16: .F16 } }
        var torchName: String { switch self { case .f32: "float32"; case .bf16: "bfloat16"; case .f16: "float16" } }
    }

    /// Writes `layers` layers of `config` with weights from `seed` into `directory` (created if
    /// missing); returns the number of tensors written.
    @discardableResult
    public static func write(config base: MLAConfig, layers: Int, as type: WeightType, seed: UInt64, to directory: String) throws -> Int {
        var config = base
        config.numHiddenLayers = layers
        try config.validate()
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var writer = SafeTensorsWriter(metadata: ["format": "pt", "producer": "mla-tp init", "seed": "\(seed)"])
        for layer in 0..<layers {
            let attention = try MLAAttention(config: config, layer: layer, shard: .whole, source: SeededWeights(seed: seed))
            for t in attention.namedTensors { try writer.add(t.name, floats: t.values, shape: t.shape, as: type.dtype) }
        }
        var dict = try JSONSerialization.jsonObject(with: JSONEncoder().encode(config)) as? [String: Any] ?? [:]
        dict["model_type"] = "deepseek_v3"
        dict["architectures"] = ["DeepseekV3ForCausalLM"]
        dict["torch_dtype"] = type.torchName
        let json = try JSONSerialization.data(withJSONObject: dict, options: [.prettyPrinted, .sortedKeys])
        try AtomicFile.write(json, to: (directory as NSString).appendingPathComponent("config.json"))
        try writer.write(to: (directory as NSString).appendingPathComponent("model.safetensors"))
        return writer.tensorNames.count
    }
}
