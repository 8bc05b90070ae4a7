import Foundation
import MLA
import Planner
import SafeTensors
import TensorCore
import TensorParallel

/// Which model a job runs and how it is held (`--preset`/`--model`/`--config --weights`, `--gate`,
/// `--seed`, `--dtype`, `--kv-cache-dtype`, `--act`, `--set`): one value, so a child job gets all
/// of it or none.
public struct ModelChoice: Codable, Sendable, Equatable {
    /// Where the model comes from: a preset with seeded weights, or a checkpoint.
    public enum Origin: Codable, Sendable, Equatable {
        case preset(String)
        case checkpoint(config: String, weights: String)
    }
    /// `--set KEY=VALUE`: a config.json key and its value as JSON text.
    public struct Override: Codable, Sendable, Equatable {
        public var key: String
        public var value: String
        public init(key: String, value: String) {
            self.key = key
            self.value = value
        }
    }

    public var origin: Origin
    public var gate: GateLayout
    /// Seed of the TP-independent random weights (presets) and input.
    public var seed: UInt64
    /// What the activations are stored in (`--dtype`; bf16 under `--quantization fp8`).
    public var dtype: Precision
    /// `--quantization` (nil: none).
    public var quantization: WeightQuantization?
    /// What the latent cache holds its tokens in (`auto`: `dtype`'s own, `kvCacheDType`).
    public var kvCache: KVCacheChoice
    /// The gate activation in place of the config's (nil: the config's).
    public var activation: GateActivation?
    public var overrides: [Override]

    public init(origin: Origin, gate: GateLayout = .column, seed: UInt64 = 1234, dtype: Precision = .f32,
                kvCache: KVCacheChoice = .auto, activation: GateActivation? = nil, overrides: [Override] = [],
                quantization: WeightQuantization? = nil) {
        self.origin = origin
        self.quantization = quantization
        self.gate = gate
        self.seed = seed
        self.dtype = dtype
        self.kvCache = kvCache
        self.activation = activation
        self.overrides = overrides
    }

    /// How every projection holds its weights: `--quantization` over `--dtype`.
    public var storage: any WeightStorage.Type { (quantization ?? .none).storage(activations: dtype) }

    /// The cache dtype `kvCache` means for this model's activations.
    public var kvCacheDType: KVCacheDType { kvCache.resolved(activations: dtype) }

    /// `hw` holding this model's weights and latent cache as it holds them (`Hardware.holding`):
    /// fp8 weights' bytes (and a GPU's FP8 rate), the cache dtype's bytes per cached value.
    public func holding(_ hw: Hardware, config: MLAConfig) -> Hardware {
        hw.holding(quantization: quantization, cacheBytesPerToken: KVCache.bytesPerToken(config: config, dtype: kvCacheDType), config: config)
    }

    /// The config (the activation and every override applied) and a short name for reports.
    public func loadConfig() throws -> (MLAConfig, String) {
        var (config, name): (MLAConfig, String)
        switch origin {
        case let .preset(p): (config, name) = (try Presets.config(p), p)
        case let .checkpoint(path, weights): (config, name) = (try MLAConfig.load(path: path), weights)
        }
        if let activation { config.gatedAttnAct = activation.rawValue }
        return (try config.applying(overrides: overrides.map { ($0.key, $0.value) }), name)
    }

    /// Every file the model is read from: config.json, and the checkpoint's index and shards
    /// (none for a preset). An output must be none of them.
    public var inputFiles: [String] {
        switch origin {
        case .preset: return []
        case let .checkpoint(config, weights): return [config] + CheckpointIndex.files(at: weights)
        }
    }

    /// A fresh weight source for `config`: seeded for presets, the checkpoint otherwise.
    public func weightSource(for config: MLAConfig) throws -> WeightSource {
        switch origin {
        case .preset: return SeededWeights(seed: seed)
        case let .checkpoint(_, weights): return try CheckpointWeights(path: weights, config: config)
        }
    }
}
