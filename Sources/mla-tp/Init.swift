import ArgumentParser
import Foundation
import MLA
import SwiftMPI

extension SeededCheckpoint.WeightType: ExpressibleByArgument {}

/// `mla-tp init`: writes a random HF-layout checkpoint from the seeded TP-independent weights.
struct Init: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a random HF-layout checkpoint (config.json + model.safetensors) from the seeded weights.",
        discussion: "Example: mla-tp init --preset tiny --out /tmp/tiny && mpirun -n 4 mla-tp run --model /tmp/tiny --output /tmp/out.safetensors")

    @Option(help: "Model shape: \(Presets.names.joined(separator: ", ")).", transform: PresetName.init(parsing:))
    var preset = try! PresetName(parsing: "tiny")
    @Option(help: "Directory to write (created if missing).") var out: String
    @Option(help: "Number of layers to write.") var layers = 1
    @Option(help: "Weight dtype.") var dtype: SeededCheckpoint.WeightType = .f32
    @Option(help: "Seed of the weights (the same seed as `run --seed` gives the same values).") var seed: UInt64 = 1234
    @Option(name: .customLong("set"), help: "Override a config.json key (repeatable), as in `run --set`.", transform: ConfigOverride.init(parsing:))
    var overrides: [ConfigOverride] = []

    func validate() throws {
        guard layers >= 1 else { throw ValidationError("--layers \(layers) must be at least 1") }
    }

    func run() throws {
        let config = try Presets.config(preset.name).applying(overrides: overrides.map { ($0.key, $0.value) })
        let count = try SeededCheckpoint.write(config: config, layers: layers, as: dtype, seed: seed, to: out)
        RankOutput(rank: 0).printRoot("wrote \(out)/config.json and \(out)/model.safetensors: \(count) tensors, "
                                      + "\(layers) layer\(layers == 1 ? "" : "s"), \(dtype.rawValue)")
    }
}
