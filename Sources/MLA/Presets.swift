/// Built-in model shapes for `--preset`.
public enum Presets {
    public static let names = ["tiny", "tiny-headwise", "tiny-packed", "tiny-headwise-packed", "deepseek-v3", "deepseek-v2-lite"]

    /// The config of preset `name`, or `ConfigError.unknownPreset`.
    public static func config(_ name: String) throws -> MLAConfig {
        switch name {
        case "tiny": return tiny
        case "tiny-headwise": return tiny.withGate(granularity: "head")
        case "tiny-packed": return tiny.withGate(placement: "packed")
        case "tiny-headwise-packed": return tiny.withGate(granularity: "head", placement: "packed")
        case "deepseek-v3": return deepseekV3
        case "deepseek-v2-lite": return deepseekV2Lite
        default: throw ConfigError.unknownPreset(name)
        }
    }

    /// Small enough for every test: 8 heads so tp ∈ {1, 2, 4, 8} all divide.
    public static var tiny: MLAConfig {
        var c = MLAConfig(hiddenSize: 256, numAttentionHeads: 8, qLoraRank: 96, kvLoraRank: 64,
                          qkNopeHeadDim: 32, qkRopeHeadDim: 16, vHeadDim: 32)
        c.useGatedAttn = true
        c.gatedAttnAct = "sigmoid"
        c.useBias = true
        c.numHiddenLayers = 1
        return c
    }

    /// DeepSeek-V3 (671B) attention, with YaRN as in its released config.json.
    public static var deepseekV3: MLAConfig {
        var c = MLAConfig(hiddenSize: 7168, numAttentionHeads: 128, qLoraRank: 1536, kvLoraRank: 512,
                          qkNopeHeadDim: 128, qkRopeHeadDim: 64, vHeadDim: 128)
        c.ropeTheta = 10_000
        c.ropeScaling = RopeScaling(type: "yarn", factor: 40, originalMaxPositionEmbeddings: 4096,
                                    betaFast: 32, betaSlow: 1, mscale: 1.0, mscaleAllDim: 1.0)
        c.maxPositionEmbeddings = 163_840
        c.useGatedAttn = true
        c.numHiddenLayers = 61
        return c
    }

    /// DeepSeek-V2-Lite: no q LoRA (q_proj), 16 heads.
    public static var deepseekV2Lite: MLAConfig {
        var c = MLAConfig(hiddenSize: 2048, numAttentionHeads: 16, qLoraRank: nil, kvLoraRank: 512,
                          qkNopeHeadDim: 128, qkRopeHeadDim: 64, vHeadDim: 128)
        c.ropeScaling = RopeScaling(type: "yarn", factor: 40, originalMaxPositionEmbeddings: 4096,
                                    betaFast: 32, betaSlow: 1, mscale: 0.707, mscaleAllDim: 0.707)
        c.maxPositionEmbeddings = 163_840
        c.useGatedAttn = true
        c.numHiddenLayers = 27
        return c
    }
}

extension MLAConfig {
    /// This config with another gate form (`tiny-headwise`, `tiny-packed`, …). A packed gate has
    /// no bias of its own; `use_bias` then gives only o_proj a bias.
    func withGate(granularity: String = "element", placement: String = "separate") -> MLAConfig {
        var c = self
        c.gatedAttnGranularity = granularity
        c.gatedAttnPlacement = placement
        return c
    }
}
