import ArgumentParser
import Foundation
import MLA
import SafeTensors
import SwiftMPI
import TensorParallel

/// `mla-tp init`: writes a random HF-layout checkpoint from the seeded TP-independent weights,
/// so the real-file path can be tried without downloading anything.
struct Init: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a random HF-layout checkpoint (config.json + model.safetensors) from the seeded weights.",
        discussion: "Example: mla-tp init --preset tiny --out /tmp/tiny && mpirun -n 4 mla-tp run --model /tmp/tiny --output /tmp/out.safetensors")

    @Option(help: "Model shape: \(Presets.names.joined(separator: ", ")).") var preset = "tiny"
    @Option(help: "Directory to write (created if missing).") var out: String
    @Option(help: "Number of layers to write.") var layers = 1
    @Option(help: "Weight dtype: f32, bf16 or f16.") var dtype = "f32"
    @Option(help: "Seed of the weights (the same seed as `run --seed` gives the same values).") var seed: UInt64 = 1234
    @Option(name: .customLong("set"), help: "Override a config.json key (repeatable), as in `run --set`.") var overrides: [String] = []

    func validate() throws {
        guard layers >= 1 else { throw ValidationError("--layers \(layers) must be at least 1") }
        guard ["f32", "bf16", "f16"].contains(dtype) else { throw ValidationError("--dtype \(dtype) is not one of f32, bf16, f16") }
    }

    func run() throws {
        var options = try ModelOptions.parse(["--preset", preset] + overrides.flatMap { ["--set", $0] })
        options.seed = seed
        var (config, _) = try options.loadConfig()
        config.numHiddenLayers = layers
        try config.validate()
        let type: DType = dtype == "bf16" ? .BF16 : dtype == "f16" ? .F16 : .F32
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        var writer = SafeTensorsWriter(metadata: ["format": "pt", "producer": "mla-tp init", "seed": "\(seed)"])
        for layer in 0..<layers {
            let attention = try MLAAttention(config: config, layer: layer, shard: .whole, source: SeededWeights(seed: seed))
            for t in attention.namedTensors { try writer.add(t.name, floats: t.values, shape: t.shape, as: type) }
        }
        var dict = try JSONSerialization.jsonObject(with: JSONEncoder().encode(config)) as? [String: Any] ?? [:]
        dict["model_type"] = "deepseek_v3"
        dict["architectures"] = ["DeepseekV3ForCausalLM"]
        dict["torch_dtype"] = ["f32": "float32", "bf16": "bfloat16", "f16": "float16"][dtype]
        let json = try JSONSerialization.data(withJSONObject: dict, options: [.prettyPrinted, .sortedKeys])
        try writeAtomically(json, to: (out as NSString).appendingPathComponent("config.json"))
        let modelPath = (out as NSString).appendingPathComponent("model.safetensors")
        try writer.write(to: modelPath)
        RankOutput(rank: 0).printRoot("wrote \(out)/config.json and \(modelPath): \(writer.tensorNames.count) tensors, \(layers) layer\(layers == 1 ? "" : "s"), \(dtype)")
    }
}

/// Writes `data` to a temporary file in the same directory, then renames it into place.
func writeAtomically(_ data: Data, to path: String) throws {
    let url = URL(fileURLWithPath: path)
    let temp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())")
    do {
        try data.write(to: temp)
        guard rename(temp.path, path) == 0 else {
            throw CLIError.input("cannot rename \(temp.path) to \(path) (errno \(errno)) — check the directory's permissions", everyRank: false)
        }
    } catch {
        try? FileManager.default.removeItem(at: temp)
        throw error
    }
}
