import ArgumentParser
import Foundation
import Jobs
import MLA
import SafeTensors
import TensorCore
import TensorParallel

/// Which model to run: a preset with seeded weights, or a checkpoint.
struct ModelOptions: ParsableArguments {
    @Option(help: "Built-in model shape with seeded weights: \(Presets.names.joined(separator: ", ")).", transform: PresetName.init(parsing:))
    var preset: PresetName?

    @Option(help: "HF checkpoint directory: config.json plus model.safetensors or model.safetensors.index.json with shards.")
    var model: String?

    @Option(help: "A config.json, with --weights (instead of --model).")
    var config: String?

    @Option(help: "A .safetensors file or checkpoint directory, with --config.")
    var weights: String?

    @Option(help: "Gate layout: column (the fix: split with the heads), replicated (FastDeploy PR #7404 as merged; fails at tp>1), replicated-sliced; for a gate packed into q: column (as stored), packed-as-interleaved, packed-as-concatenated (to show a wrong split).")
    var gate: GateLayout = .column

    @Option(parsing: .unconditional, help: "Seed of the TP-independent random weights and input.")
    var seed: UInt64 = 1234

    @Option(name: .customLong("dtype"), help: ArgumentHelp(
        "Element type of weights and activations: f32 or bf16.",
        discussion: "bf16 runs as a bf16 engine does: weights held in bf16 (a bf16 checkpoint as stored, others rounded once), activations rounded where transformers' bf16 forward rounds, GEMMs on bf16 operands accumulating in f32 (docs/precision.md)."))
    var dtypeOption: Precision?

    @Option(help: ArgumentHelp(
        "Weight quantization: none or fp8.",
        discussion: "fp8 holds the projections as an engine serving DeepSeek-V3 does: e4m3 with one f32 scale per 128×128 tile, activations in bf16 (W8A16). An fp8 checkpoint's tensors are taken as stored; bf16/f32 checkpoints and presets are quantized once per tile (scale = amax / 448)."))
    var quantization: WeightQuantization?

    @Option(name: .customLong("kv-cache-dtype"), help: ArgumentHelp(
        "What the latent KV cache holds its tokens in: auto (the --dtype), f32, bf16 or fp8.",
        discussion: "bf16: 2 bytes a value, rounded to nearest even when a token is appended (exact under --dtype bf16). fp8: FlashMLA's token layout, the latent in e4m3 with an f32 scale per 128 values and k_rope in bf16 (656 bytes a token for deepseek-v3); attention dequantizes a tile of tokens at a time (docs/serving.md, docs/precision.md)."))
    var kvCacheDType: KVCacheChoice = .auto

    @Option(help: "Override the config's gate activation.")
    var act: GateActivation?

    @Option(name: .customLong("set"), help: "Override a config.json key, e.g. --set use_bias=false --set q_lora_rank=null --set rope_interleave=false (repeatable; VALUE is JSON).",
            transform: ConfigOverride.init(parsing:))
    var overrides: [ConfigOverride] = []

    func validate() throws {
        if quantization == .fp8 && dtypeOption == .f32 {
            throw ValidationError("--quantization fp8 computes with bf16 activations (W8A16) — drop --dtype f32, or pass --dtype bf16")
        }
        if model != nil, preset != nil || config != nil || weights != nil {
            throw ValidationError("--model cannot be combined with --preset, --config or --weights — pick one source")
        }
        if (config == nil) != (weights == nil) || (config != nil && preset != nil) {
            throw ValidationError("--config and --weights go together, without --preset — pass both (--config FILE --weights FILE_OR_DIR), or --model DIR")
        }
    }

    /// These flags as one value: what a job, here or in a child process, is given.
    var choice: ModelChoice {
        let origin: ModelChoice.Origin
        if let model {
            origin = .checkpoint(config: (model as NSString).appendingPathComponent("config.json"), weights: model)
        } else if let config, let weights {
            origin = .checkpoint(config: config, weights: weights)
        } else {
            origin = .preset(preset?.name ?? "tiny")
        }
        return ModelChoice(origin: origin, gate: gate, seed: seed, dtype: quantization == .fp8 ? .bf16 : dtypeOption ?? .f32, kvCache: kvCacheDType,
                           activation: act, overrides: overrides.map { .init(key: $0.key, value: $0.value) },
                           quantization: quantization == WeightQuantization.none ? nil : quantization)
    }

    /// What the activations are stored in: `--dtype`, bf16 under `--quantization fp8`.
    var dtype: Precision { choice.dtype }
    /// How the projections hold their weights (`--dtype`, `--quantization`).
    var storage: any WeightStorage.Type { choice.storage }

    /// The config (`--act` and every `--set` applied) and a short name for reports.
    func loadConfig() throws -> (MLAConfig, String) { try choice.loadConfig() }

    /// A fresh weight source for `config`: seeded for presets, the checkpoint otherwise.
    func weightSource(for config: MLAConfig) throws -> WeightSource { try choice.weightSource(for: config) }
}

/// Which tokens to run: seeded random hidden states in one or more sequences.
struct InputOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: "Tokens in the seeded random input (one sequence).")
    var tokens: Int?

    @Option(parsing: .unconditional, help: "Comma-separated sequence lengths for a batch, e.g. 7,1,12 (overrides --tokens).", transform: IntList<Lengths>.init(parsing:))
    var seqs: IntList<Lengths>?

    func validate() throws {
        if let tokens { try requireAtLeast(0, "--tokens", tokens, "the tokens of the seeded input, e.g. --tokens 16") }
    }

    /// The sequence lengths asked for (`--seqs`, else one sequence of `--tokens`).
    func lengths(defaultTokens: Int = 16) -> [Int] { seqs?.values ?? [tokens ?? defaultTokens] }
}
