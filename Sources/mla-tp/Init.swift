import ArgumentParser
import Foundation
import MLA
import Planner
import SwiftMPI
import TensorCore

extension SeededCheckpoint.WeightType: ExpressibleByArgument {}

/// `mla-tp init`: writes a random HF-layout checkpoint from the seeded TP-independent weights.
struct Init: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a random HF-layout checkpoint (config.json + model.safetensors) from the seeded weights.",
        discussion: "Example: mla-tp init --preset tiny --out /tmp/tiny && mpirun -n 4 mla-tp run --model /tmp/tiny --output /tmp/out.safetensors")

    @Option(help: "Model shape: \(Presets.names.joined(separator: ", ")).", transform: PresetName.init(parsing:))
    var preset = try! PresetName(parsing: "tiny")
    @Option(help: "Directory to write (created if missing).") var out: String
    @Option(parsing: .unconditional, help: "Number of layers to write.") var layers = 1
    @Option(help: "Weight dtype.") var dtype: SeededCheckpoint.WeightType = .f32
    @Option(parsing: .unconditional, help: "Seed of the weights (the same seed as `run --seed` gives the same values).") var seed: UInt64 = 1234
    @Option(name: .customLong("set"), help: "Override a config.json key (repeatable), as in `run --set`.", transform: ConfigOverride.init(parsing:))
    var overrides: [ConfigOverride] = []

    func validate() throws {
        try requireAtLeast(1, "--layers", layers, "the layers to write")
    }

    /// The checkpoint against this process's memory (every tensor is encoded before it is
    /// written) and the free space where it goes, before anything is built.
    func requireBudget(_ config: MLAConfig) throws {
        let budget = SizeBudget(ranksOnHost: 1), bytes = dtype.bytesPerElement
        try budget.requireWeights(config: config, tp: 1, gate: .column, check: false, model: "preset \(preset.name)")
        try budget.require(.init("--layers", layers, holds: "every tensor, encoded before it is written")) { v throws(CountOverflow) in
            .init(perRank: try SizeBudget.checkpoint(config: config, layers: v, bytesPerElement: bytes).memory)
        }
        try budget.requireDisk(.init("--layers", layers), directory: out) { v throws(CountOverflow) in
            try SizeBudget.checkpoint(config: config, layers: v, bytesPerElement: bytes).file
        }
    }

    func run() throws {
        var config = try Presets.config(preset.name).applying(overrides: overrides.map { ($0.key, $0.value) })
        config.numHiddenLayers = layers
        try config.validate()
        _ = try SeededCheckpoint.checkTarget(out)
        try requireBudget(config)
        let count = try SeededCheckpoint.write(config: config, layers: layers, as: dtype, seed: seed, to: out)
        RankOutput(rank: 0).printRoot("wrote \(out)/config.json and \(out)/model.safetensors: \(count) tensors, "
                                      + "\(layers) layer\(layers == 1 ? "" : "s"), \(dtype.rawValue)")
    }
}
