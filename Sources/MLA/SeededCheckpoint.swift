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
        /// Bytes of one element in the file.
        public var bytesPerElement: Int { dtype.byteSize }
        var torchName: String { switch self { case .f32: "float32"; case .bf16: "bfloat16"; case .f16: "float16" } }
    }

    /// Writes `layers` layers of `config` with weights from `seed` into `directory`, whole or not
    /// at all: `config.json` and `model.safetensors` are built as unnamed files (in `directory`, or
    /// beside it when it does not exist yet) and linked in together at the end (`AtomicFile`), so
    /// a failure or a signal leaves an existing checkpoint there as it was and creates nothing.
    /// The directory's parent must exist. Returns the number of tensors written.
    @discardableResult
    public static func write(config base: MLAConfig, layers: Int, as type: WeightType, seed: UInt64, to directory: String) throws -> Int {
        var config = base
        config.numHiddenLayers = layers
        try config.validate()
        let exists = try checkTarget(directory)
        if exists { try OutputDirectory.claim(directory) }      // a second init into it is refused, naming this one
        let staging = exists ? nil : AtomicFile.directory(of: directory)
        let weightsFile = try AtomicFile(path: (directory as NSString).appendingPathComponent(CheckpointIndex.singleFileName), stagingDirectory: staging)
        let configFile = try AtomicFile(path: (directory as NSString).appendingPathComponent("config.json"), stagingDirectory: staging)
        var writer = SafeTensorsWriter(metadata: ["format": "pt", "producer": "mla-tp init", "seed": "\(seed)"])
        for layer in 0..<layers {
            let attention = try MLAAttention(config: config, layer: layer, shard: .whole, source: SeededWeights(seed: seed))
            for t in attention.namedTensors { try writer.add(t.name, floats: t.values, shape: t.shape, as: type.dtype) }
        }
        var dict = try JSONSerialization.jsonObject(with: JSONEncoder().encode(config)) as? [String: Any] ?? [:]
        dict["model_type"] = "deepseek_v3"
        dict["architectures"] = ["DeepseekV3ForCausalLM"]
        dict["torch_dtype"] = type.torchName
        try configFile.write([UInt8](try JSONSerialization.data(withJSONObject: dict, options: [.prettyPrinted, .sortedKeys])))
        try writer.write(into: weightsFile)
        try AtomicFile.commit([weightsFile, configFile], creatingDirectory: exists ? nil : directory)
        return writer.tensorNames.count
    }

    /// Checks `directory` before anything is written: whether it exists (else its parent must),
    /// that it is a directory, that its `config.json` and `model.safetensors` are regular files if
    /// present, and that no sharded index there would shadow the new `model.safetensors`.
    /// Returns whether it exists.
    public static func checkTarget(_ directory: String) throws -> Bool {
        guard try OutputDirectory.check(directory) else { return false }
        let index = (directory as NSString).appendingPathComponent(CheckpointIndex.indexFileName)
        if FileManager.default.fileExists(atPath: index) { throw InitTargetError.shardedCheckpoint(index: index) }
        for name in [CheckpointIndex.singleFileName, "config.json"] {
            try OutputTarget.check((directory as NSString).appendingPathComponent(name), against: [])
        }
        return true
    }
}

/// An `init --out` that cannot hold a checkpoint: a usage error, before anything is written
/// (the directory's own checks are `OutputDirectoryError`).
public enum InitTargetError: Error, Equatable, CustomStringConvertible {
    case shardedCheckpoint(index: String)

    public var description: String {
        switch self {
        case let .shardedCheckpoint(index):
            return "\(index) is there: a sharded checkpoint, which would be loaded instead of the new model.safetensors — "
                + "write into another directory, or remove the old checkpoint first"
        }
    }
}
