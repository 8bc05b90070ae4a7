import ArgumentParser
import Foundation
import MLA
import SwiftMPI
import TensorCore
import TensorParallel

extension GateLayout: ExpressibleByArgument {}
extension DecodePath: ExpressibleByArgument {}

/// Which model to run: a preset with seeded weights, or a checkpoint.
struct ModelOptions: ParsableArguments {
    @Option(help: "Built-in model shape with seeded weights: \(Presets.names.joined(separator: ", ")).")
    var preset: String?

    @Option(help: "HF checkpoint directory: config.json plus model.safetensors or model.safetensors.index.json with shards.")
    var model: String?

    @Option(help: "A config.json, with --weights (instead of --model).")
    var config: String?

    @Option(help: "A .safetensors file or checkpoint directory, with --config.")
    var weights: String?

    @Option(help: "Gate layout: column (the fix), replicated (FastDeploy PR #7404 as merged; fails at tp>1), replicated-sliced.")
    var gate: GateLayout = .column

    @Option(help: "Seed of the TP-independent random weights and input.")
    var seed: UInt64 = 1234

    @Option(help: "Override the preset's gate activation (sigmoid, scaled_softsign).")
    var act: String?

    @Option(name: .customLong("set"),
            help: "Override a config.json key, e.g. --set use_bias=false --set q_lora_rank=null --set rope_interleave=false (repeatable; VALUE is JSON).")
    var overrides: [String] = []

    /// Where the model comes from, as chosen by the flags.
    enum Origin { case preset(String), checkpoint(config: String, weights: String) }

    func origin() throws -> Origin {
        if let model {
            guard preset == nil, config == nil, weights == nil else {
                throw CLIError.usage("--model cannot be combined with --preset, --config or --weights — pick one source")
            }
            return .checkpoint(config: (model as NSString).appendingPathComponent("config.json"), weights: model)
        }
        if config != nil || weights != nil {
            guard let config, let weights, preset == nil else {
                throw CLIError.usage("--config and --weights go together (and without --preset): --config FILE --weights FILE_OR_DIR")
            }
            return .checkpoint(config: config, weights: weights)
        }
        return .preset(preset ?? "tiny")
    }

    /// The config (overrides applied) and a short name for reports.
    func loadConfig() throws -> (MLAConfig, String) {
        switch try origin() {
        case let .preset(name): return (try applyOverrides(to: try Presets.config(name)), name)
        case let .checkpoint(configPath, weights):
            return (try applyOverrides(to: try MLAConfig.load(path: configPath)), weights)
        }
    }

    /// A fresh weight source for `config`: seeded for presets, the checkpoint otherwise.
    func weightSource(for config: MLAConfig) throws -> WeightSource {
        switch try origin() {
        case .preset: return SeededWeights(seed: seed)
        case let .checkpoint(_, weights): return try CheckpointWeights(path: weights, config: config)
        }
    }

    /// Applies `--act` and every `--set KEY=VALUE` through config.json's own keys.
    func applyOverrides(to base: MLAConfig) throws -> MLAConfig {
        var config = base
        if let act { config.gatedAttnAct = act }
        guard !overrides.isEmpty else { return config }
        var dict = try JSONSerialization.jsonObject(with: JSONEncoder().encode(config)) as? [String: Any] ?? [:]
        for item in overrides {
            guard let eq = item.firstIndex(of: "="), eq != item.startIndex else {
                throw CLIError.usage("--set \"\(item)\" needs KEY=VALUE, e.g. --set use_bias=false")
            }
            let key = String(item[..<eq]), raw = String(item[item.index(after: eq)...])
            let value = (try? JSONSerialization.jsonObject(with: Data(raw.utf8), options: [.fragmentsAllowed])) ?? raw
            if key == "rope_scaling" || key == "rope_parameters" { dict.removeValue(forKey: "rope_scaling") }
            dict[key] = value
        }
        let data = try JSONSerialization.data(withJSONObject: dict)
        return try MLAConfig.decode(json: data, file: "--set overrides")
    }
}

/// Which tokens to run: seeded random hidden states in one or more sequences.
struct InputOptions: ParsableArguments {
    @Option(help: "Tokens in the seeded random input (one sequence).")
    var tokens: Int?

    @Option(help: "Comma-separated sequence lengths for a batch, e.g. 7,1,12 (overrides --tokens).")
    var seqs: String?

    func batch(defaultTokens: Int = 16) throws -> Batch {
        if let seqs {
            let parts = seqs.split(separator: ",", omittingEmptySubsequences: false)
            let lengths = try parts.map { part -> Int in
                guard let n = Int(part.trimmingCharacters(in: .whitespaces)), n >= 0 else {
                    throw CLIError.usage("--seqs \"\(seqs)\": \"\(part)\" is not a length ≥ 0 — write e.g. --seqs 7,1,12")
                }
                return n
            }
            return try Batch(sequenceLengths: lengths)
        }
        let t = tokens ?? defaultTokens
        guard t >= 0 else { throw CLIError.usage("--tokens \(t) must be ≥ 0") }
        return try Batch(sequenceLengths: [t])
    }
}

/// MPI start-up for a command: initializes, records the world for the failure policy.
enum Runtime {
    static func start() throws -> Communicator {
        BLAS.defaultToOneThreadPerRank()
        let world = try Environment.initialize()
        Failure.world = world
        return world
    }
}

/// Seeded random hidden states `[T, hidden]` ~ N(0, 1), the same values whatever tp is.
func seededInput(tokens: Int, hidden: Int, seed: UInt64) throws -> Matrix {
    let values = SeededInit.fill(name: "input.hidden_states", seed: seed, rows: 0..<tokens, cols: 0..<hidden,
                                 globalCols: hidden, std: 1)
    return try Matrix(rows: tokens, cols: hidden, values: values)
}

/// Formats a byte count for tables: B, KB, MB, GB (decimal, as the plan's "470 MB").
func formatBytes(_ n: Int) -> String {
    let v = Double(n)
    if v >= 1e9 { return String(format: "%.2f GB", v / 1e9) }
    if v >= 1e6 { return String(format: "%.1f MB", v / 1e6) }
    if v >= 1e3 { return String(format: "%.1f KB", v / 1e3) }
    return "\(n) B"
}

/// A left-aligned text table.
func table(_ header: [String], _ rows: [[String]]) -> String {
    let all = [header] + rows
    let widths = header.indices.map { i in all.map { $0[i].count }.max() ?? 0 }
    func line(_ r: [String]) -> String {
        r.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined(separator: "  ")
            .trimmingCharacters(in: .whitespaces)
    }
    return ([line(header), widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")] + rows.map(line))
        .joined(separator: "\n")
}

/// How o_proj's partial sums are reduced (`--allreduce`).
struct CollectiveOptions: ParsableArguments {
    enum Choice: String, ExpressibleByArgument, CaseIterable { case auto, mpi }

    @Option(help: ArgumentHelp(
        "How o_proj's partial sums are reduced: auto or mpi.",
        discussion: "auto: payloads up to 1 MiB (a decode step's) through a shared-memory window when every rank is on one host and no core hosts two ranks, MPI_Allreduce otherwise; mpi: always MPI_Allreduce."))
    var allreduce: Choice = .auto

    /// Collectives over `world` as chosen.
    func collectives(_ world: Communicator) -> Collectives {
        let c = Collectives(world)
        if allreduce == .mpi { c.sharedMemoryLimit = 0 }
        return c
    }
}
