import Foundation

/// The attention part of an HF DeepSeek-V3 `config.json`, plus FastDeploy PR #7404's gate keys.
///
/// Field names are camelCase; `CodingKeys` are the checkpoint's snake_case keys, so the mapping
/// to `config.json` is one to one. Both RoPE forms decode: the released DeepSeek-V3 form
/// (`rope_scaling` with `type`, plus a top-level `rope_theta`) and the transformers-5 form
/// (`rope_parameters` with `rope_type` and its own `rope_theta`).
public struct MLAConfig: Equatable, Sendable {
    public var hiddenSize: Int              // model width
    public var numAttentionHeads: Int       // H
    public var qLoraRank: Int?              // nil: q_proj instead of q_a_proj → q_b_proj
    public var kvLoraRank: Int              // width of the compressed latent
    public var qkNopeHeadDim: Int           // per-head q/k part without RoPE
    public var qkRopeHeadDim: Int           // per-head q/k part with RoPE (k's is shared by heads)
    public var vHeadDim: Int                // per-head value width
    public var rmsNormEps: Float = 1e-6
    public var ropeTheta: Double = 10_000
    public var ropeScaling: RopeScaling?    // nil or type "default": plain RoPE
    public var ropeInterleave: Bool = true  // HF's default for DeepSeek-V3
    public var attentionBias: Bool = false  // biases on q_a_proj, kv_a_proj_with_mqa, o_proj
    public var maxPositionEmbeddings: Int = 4096
    public var numHiddenLayers: Int?        // bounds --layer when present
    public var useGatedAttn: Bool = false   // PR #7404: o_proj(attn * act(gate(x)))
    public var gatedAttnAct: String = "sigmoid"
    public var useBias: Bool = false        // PR #7404: biases on gate and o_proj
    public var gatedAttnGranularity = "element"   // "element": [T, H·v] gate; "head": [T, H], one value per head
    public var gatedAttnPlacement = "separate"    // "separate": its own projection; "packed": rows of q_b_proj / q_proj
    public var gatedAttnPacking = "interleaved"   // packed rows stored per head [q_h | g_h], or "concatenated" [all q | all g]
    public var weightBlockSize: [Int]?      // FP8 checkpoints: quantization_config.weight_block_size
    public var quantMethod: String?         // quantization_config.quant_method ("fp8" is the one read)
    public var quantFormat: String?         // quantization_config.fmt ("e4m3")
    public var modulesToNotConvert: [String]?   // quantization_config.modules_to_not_convert

    public init(hiddenSize: Int, numAttentionHeads: Int, qLoraRank: Int?, kvLoraRank: Int,
                qkNopeHeadDim: Int, qkRopeHeadDim: Int, vHeadDim: Int) {
        self.hiddenSize = hiddenSize
        self.numAttentionHeads = numAttentionHeads
        self.qLoraRank = qLoraRank
        self.kvLoraRank = kvLoraRank
        self.qkNopeHeadDim = qkNopeHeadDim
        self.qkRopeHeadDim = qkRopeHeadDim
        self.vHeadDim = vHeadDim
    }

    /// Per-head query/key width: nope + rope.
    public var qkHeadDim: Int { qkNopeHeadDim + qkRopeHeadDim }
    /// `hidden` of the o_proj input (and of an element-wise gate's output): H · v.
    public var attnOutWidth: Int { numAttentionHeads * vHeadDim }
    /// Whether an o_proj bias exists: HF's `attention_bias` or the gate's `use_bias`.
    public var oProjBias: Bool { attentionBias || useBias }
}

/// YaRN (or plain) RoPE parameters, as HF reads them.
public struct RopeScaling: Equatable, Sendable, Codable {
    public var type: String                         // "yarn" or "default"
    public var factor: Double = 1
    public var originalMaxPositionEmbeddings: Int?
    public var betaFast: Double = 32
    public var betaSlow: Double = 1
    public var mscale: Double?
    public var mscaleAllDim: Double?
    public var attentionFactor: Double?
    public var truncate: Bool = true

    public init(type: String, factor: Double = 1, originalMaxPositionEmbeddings: Int? = nil,
                betaFast: Double = 32, betaSlow: Double = 1, mscale: Double? = nil, mscaleAllDim: Double? = nil) {
        self.type = type
        self.factor = factor
        self.originalMaxPositionEmbeddings = originalMaxPositionEmbeddings
        self.betaFast = betaFast
        self.betaSlow = betaSlow
        self.mscale = mscale
        self.mscaleAllDim = mscaleAllDim
    }

    enum CodingKeys: String, CodingKey {
        case type, ropeType = "rope_type", factor, originalMaxPositionEmbeddings = "original_max_position_embeddings"
        case betaFast = "beta_fast", betaSlow = "beta_slow", mscale, mscaleAllDim = "mscale_all_dim"
        case attentionFactor = "attention_factor", truncate
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        type = try c.decodeIfPresent(String.self, forKey: .ropeType) ?? c.decodeIfPresent(String.self, forKey: .type) ?? "default"
        factor = try c.decodeIfPresent(Double.self, forKey: .factor) ?? 1
        originalMaxPositionEmbeddings = try c.decodeIfPresent(Int.self, forKey: .originalMaxPositionEmbeddings)
        betaFast = try c.decodeIfPresent(Double.self, forKey: .betaFast) ?? 32
        betaSlow = try c.decodeIfPresent(Double.self, forKey: .betaSlow) ?? 1
        mscale = try c.decodeIfPresent(Double.self, forKey: .mscale)
        mscaleAllDim = try c.decodeIfPresent(Double.self, forKey: .mscaleAllDim)
        attentionFactor = try c.decodeIfPresent(Double.self, forKey: .attentionFactor)
        truncate = try c.decodeIfPresent(Bool.self, forKey: .truncate) ?? true
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(type, forKey: .type)
        try c.encode(factor, forKey: .factor)
        try c.encodeIfPresent(originalMaxPositionEmbeddings, forKey: .originalMaxPositionEmbeddings)
        try c.encode(betaFast, forKey: .betaFast)
        try c.encode(betaSlow, forKey: .betaSlow)
        try c.encodeIfPresent(mscale, forKey: .mscale)
        try c.encodeIfPresent(mscaleAllDim, forKey: .mscaleAllDim)
        try c.encodeIfPresent(attentionFactor, forKey: .attentionFactor)
    }

    /// True when this is YaRN rather than plain RoPE.
    public var isYarn: Bool { type == "yarn" }
}
