import TensorParallel

/// A `config.json` (or preset) that cannot describe a runnable layer, or a layout that
/// cannot run it. Each message names the key and says what to change.
public enum ConfigError: Error, Equatable, CustomStringConvertible {
    case unreadable(file: String)
    case notJSON(file: String, detail: String)
    case missingKey(String)
    case badValue(file: String, key: String, detail: String)
    case duplicateKey(file: String, key: String)
    case nonPositive(key: String, value: Int)
    case tooLarge(key: String, value: Int, limit: Int)
    case oddRopeDim(Int)
    case headsNotDivisible(heads: Int, tp: Int)
    /// More ranks in a tensor-parallel group than heads: padding would leave ranks with no real head.
    case tpExceedsHeads(heads: Int, tp: Int)
    /// Padded heads with something that cannot hold them (the name says what, `remedy` what to do).
    case paddingUnsupported(heads: Int, tp: Int, what: String, remedy: String)
    /// `--latent-proj column` at a tp that does not divide a down-projection's outputs.
    case latentNotDivisible(projection: String, width: Int, tp: Int, sizes: [Int])
    case unknownActivation(String)
    case unknownGateForm(key: String, value: String, allowed: [String])
    case unknownPreset(String)
    case badEps(Float)
    case badRope(String)
    case unsupportedQuantization(key: String, value: String, allowed: [String])
    /// An error of the config read from `file`, named with it.
    indirect case inFile(file: String, ConfigError)

    public var description: String {
        switch self {
        case let .unreadable(file):
            return "cannot read \(file) — check the path (a model directory must contain config.json)"
        case let .notJSON(file, detail):
            return "\(file) is not valid JSON (\(detail)) — fix or re-export the file"
        case let .missingKey(key):
            return "config.json has no \"\(key)\" — add it (an HF DeepSeek-V3 config.json has every attention key)"
        case let .badValue(file, key, detail):
            return "\(file): key \"\(key)\" has the wrong type: \(detail) — use the type HF's DeepseekV3Config expects"
        case let .duplicateKey(file, key):
            return "\(file): key \"\(key)\" appears more than once; HF (Python's json) would take the last value and mla-tp will not guess — "
                + "keep one \"\(key)\""
        case let .nonPositive(key, value):
            return "\(key) = \(value) must be positive — fix the config"
        case let .tooLarge(key, value, limit):
            return "\(key) = \(value) is larger than mla-tp's limit of \(limit) — a real config is far smaller; check the value"
        case let .oddRopeDim(d):
            return "qk_rope_head_dim = \(d) must be even: RoPE rotates pairs — fix the config"
        case let .headsNotDivisible(heads, tp):
            let ok = MLAConfig.tensorParallelSizes(heads: heads).map(String.init).joined(separator: ", ")
            return "num_attention_heads = \(heads) is not divisible by tp=\(tp) — run with -n one of \(ok), "
                + "or add --pad-heads to pad to \((heads + tp - 1) / tp * tp) heads with zero ones (as SGLang does)"
        case let .tpExceedsHeads(heads, tp):
            return "tp=\(tp) is more than the \(heads) attention heads: \(tp - heads) rank\(tp - heads == 1 ? "" : "s") would hold only padding — "
                + "run at most \(heads) ranks per tensor-parallel group (--dp D for more ranks)"
        case let .paddingUnsupported(heads, tp, what, remedy):
            return "tp=\(tp) pads \(heads) heads to \((heads + tp - 1) / tp * tp), which \(what) does not support — \(remedy)"
        case let .latentNotDivisible(projection, width, tp, sizes):
            return "--latent-proj column splits \(projection)'s \(width) outputs over tp=\(tp), which does not divide them — "
                + "use --latent-proj replicated or sequence, or a tp that divides every down-projection (\(sizes.map(String.init).joined(separator: ", ")))"
        case let .unknownActivation(name):
            return "gated_attn_act \"\(name)\" is unknown — use one of: \(GateActivation.allCases.map(\.rawValue).joined(separator: ", "))"
        case let .unknownGateForm(key, value, allowed):
            return "\(key) \"\(value)\" is unknown — use one of: \(allowed.joined(separator: ", "))"
        case let .unknownPreset(name):
            return "unknown preset \"\(name)\" — use one of: \(Presets.names.joined(separator: ", "))"
        case let .badEps(eps):
            return "rms_norm_eps = \(eps) must be a positive finite number — fix the config"
        case let .badRope(detail):
            return "RoPE parameters: \(detail) — fix rope_scaling / rope_parameters"
        case let .inFile(file, error):
            return "\(file): \(error)"
        case let .unsupportedQuantization(key, value, allowed):
            return "\(key) \(value) is not supported — mla-tp reads block-quantized fp8 checkpoints (\(allowed.joined(separator: ", "))); "
                + "dequantize the checkpoint, or fix quantization_config"
        }
    }
}

/// The gate's activation (FastDeploy's `gated_attn_act`).
public enum GateActivation: String, CaseIterable, Sendable, Codable {   // Codable by its config.json name
    case sigmoid
    /// `softsign(x) · 2` = `2x / (1 + |x|)`.
    case scaledSoftsign = "scaled_softsign"
    /// `log(1 + eˣ)` (x above 20: x itself, as torch's softplus).
    case softplus
}

extension MLAConfig {
    /// Largest width accepted for any one dimension (hidden size, LoRA ranks, head dims): 2^20.
    public static let maxDimension = 1 << 20
    /// Largest head count accepted: 2^16.
    public static let maxHeads = 1 << 16
    /// Largest max_position_embeddings accepted: 2^31 − 1.
    public static let maxPositions = Int(Int32.max)

    /// The gate activation, or an error listing the allowed names. Unlike the merged
    /// FastDeploy code, an unknown name is never silently ignored.
    public func gateActivation() throws -> GateActivation {
        guard let act = GateActivation(rawValue: gatedAttnAct) else { throw ConfigError.unknownActivation(gatedAttnAct) }
        return act
    }

    /// The fp8 block size a checkpoint's scales were made with (`weight_block_size`, 128 when absent).
    public var fp8BlockSize: Int { weightBlockSize?.first ?? 128 }

    /// quantization_config, where present, names what mla-tp reads: quant_method fp8, fmt e4m3,
    /// square blocks of a positive size.
    func validateQuantization() throws {
        if let m = quantMethod, m != "fp8" {
            throw ConfigError.unsupportedQuantization(key: "quantization_config.quant_method", value: "\"\(m)\"", allowed: ["quant_method \"fp8\""])
        }
        if let f = quantFormat, f != "e4m3" {
            throw ConfigError.unsupportedQuantization(key: "quantization_config.fmt", value: "\"\(f)\"", allowed: ["fmt \"e4m3\""])
        }
        if let b = weightBlockSize, b.count != 2 || b[0] != b[1] || b[0] <= 0 || b[0] > MLAConfig.maxDimension {
            throw ConfigError.unsupportedQuantization(key: "quantization_config.weight_block_size", value: "\(b)",
                                                      allowed: ["weight_block_size [B, B] with B > 0, e.g. [128, 128]"])
        }
    }

    /// Checks everything a forward relies on, before any weight is allocated.
    public func validate(tp: Int = 1, latent: LatentProjection, padHeads: Bool = false) throws {
        try validate(tp: tp, padHeads: padHeads)
        guard latent == .column else { return }
        let widths = (qLoraRank.map { [("q_a_proj", $0)] } ?? []) + [("kv_a_proj_with_mqa", kvLoraRank + qkRopeHeadDim)]
        if let (name, width) = widths.first(where: { $0.1 % tp != 0 }) {
            let sizes = MLAConfig.tensorParallelSizes(heads: numAttentionHeads).filter { t in widths.allSatisfy { $0.1 % t == 0 } }
            throw ConfigError.latentNotDivisible(projection: name, width: width, tp: tp, sizes: sizes)
        }
    }

    public func validate(tp: Int = 1, padHeads: Bool = false) throws {
        let dims: [(String, Int)] = [
            ("hidden_size", hiddenSize), ("num_attention_heads", numAttentionHeads), ("kv_lora_rank", kvLoraRank),
            ("qk_nope_head_dim", qkNopeHeadDim), ("qk_rope_head_dim", qkRopeHeadDim), ("v_head_dim", vHeadDim),
            ("max_position_embeddings", maxPositionEmbeddings),
        ] + (qLoraRank.map { [("q_lora_rank", $0)] } ?? [])
        for (key, value) in dims where value <= 0 { throw ConfigError.nonPositive(key: key, value: value) }
        // Upper bounds keep every product of dimensions (weight sizes, FLOPs) far from Int overflow.
        if numAttentionHeads > MLAConfig.maxHeads {
            throw ConfigError.tooLarge(key: "num_attention_heads", value: numAttentionHeads, limit: MLAConfig.maxHeads)
        }
        for (key, value) in dims where key != "max_position_embeddings" && value > MLAConfig.maxDimension {
            throw ConfigError.tooLarge(key: key, value: value, limit: MLAConfig.maxDimension)
        }
        if maxPositionEmbeddings > MLAConfig.maxPositions {
            throw ConfigError.tooLarge(key: "max_position_embeddings", value: maxPositionEmbeddings, limit: MLAConfig.maxPositions)
        }
        if let layers = numHiddenLayers, layers > MLAConfig.maxDimension {
            throw ConfigError.tooLarge(key: "num_hidden_layers", value: layers, limit: MLAConfig.maxDimension)
        }
        if let layers = numHiddenLayers, layers <= 0 { throw ConfigError.nonPositive(key: "num_hidden_layers", value: layers) }
        if qkRopeHeadDim % 2 != 0 { throw ConfigError.oddRopeDim(qkRopeHeadDim) }
        guard rmsNormEps > 0, rmsNormEps.isFinite else { throw ConfigError.badEps(rmsNormEps) }
        guard ropeTheta > 0, ropeTheta.isFinite else { throw ConfigError.badRope("rope_theta = \(ropeTheta) must be positive") }
        if let s = ropeScaling {
            guard s.type == "yarn" else { throw ConfigError.badRope("rope type \"\(s.type)\" is not supported (use \"yarn\" or \"default\")") }
            guard s.factor > 0, s.factor.isFinite else { throw ConfigError.badRope("factor = \(s.factor) must be positive") }
            if let o = s.originalMaxPositionEmbeddings, o <= 0 {
                throw ConfigError.badRope("original_max_position_embeddings = \(o) must be positive")
            }
        }
        try validateQuantization()
        _ = try gateActivation()   // rejected even with the gate off: never silently ignored
        _ = try gateForm()
        if tp < 1 { throw ConfigError.nonPositive(key: "tp", value: tp) }
        if tp > numAttentionHeads { throw ConfigError.tpExceedsHeads(heads: numAttentionHeads, tp: tp) }
        if numAttentionHeads % tp != 0 && !padHeads { throw ConfigError.headsNotDivisible(heads: numAttentionHeads, tp: tp) }
    }

    /// Heads each of `tp` ranks holds: ⌈H / tp⌉. When tp does not divide H the last ranks' extra
    /// heads are zero padding (`--pad-heads`).
    public func localHeads(tp: Int) -> Int { (numAttentionHeads + tp - 1) / max(tp, 1) }
    /// The heads the ranks hold together, padding included: a multiple of tp.
    public func paddedHeads(tp: Int) -> Int { localHeads(tp: tp) * max(tp, 1) }
    /// The real (not padding) heads rank `rank` of `tp` holds.
    public func realHeads(rank: Int, tp: Int) -> Range<Int> {
        let l = localHeads(tp: tp), H = numAttentionHeads
        return min(rank * l, H) ..< min((rank + 1) * l, H)
    }

    /// The tp sizes `heads` attention heads split into: its divisors.
    public static func tensorParallelSizes(heads: Int) -> [Int] {
        (1...max(1, min(heads, MLAConfig.maxHeads))).filter { heads % $0 == 0 }
    }
}
