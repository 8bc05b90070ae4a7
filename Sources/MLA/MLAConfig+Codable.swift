import Foundation
import SafeTensors

extension MLAConfig: Codable {
    enum CodingKeys: String, CodingKey {
        case hiddenSize = "hidden_size", numAttentionHeads = "num_attention_heads", qLoraRank = "q_lora_rank"
        case kvLoraRank = "kv_lora_rank", qkNopeHeadDim = "qk_nope_head_dim", qkRopeHeadDim = "qk_rope_head_dim"
        case vHeadDim = "v_head_dim", rmsNormEps = "rms_norm_eps", ropeTheta = "rope_theta"
        case ropeScaling = "rope_scaling", ropeParameters = "rope_parameters", ropeInterleave = "rope_interleave"
        case attentionBias = "attention_bias", maxPositionEmbeddings = "max_position_embeddings"
        case numHiddenLayers = "num_hidden_layers", useGatedAttn = "use_gated_attn"
        case gatedAttnAct = "gated_attn_act", useBias = "use_bias", quantizationConfig = "quantization_config"
        case gatedAttnGranularity = "gated_attn_granularity", gatedAttnPlacement = "gated_attn_placement"
        case gatedAttnPacking = "gated_attn_packing"
    }

    struct Quantization: Codable {
        var weightBlockSize: [Int]?
        var quantMethod: String?
        var fmt: String?
        var modulesToNotConvert: [String]?
        enum CodingKeys: String, CodingKey {
            case weightBlockSize = "weight_block_size", quantMethod = "quant_method", fmt
            case modulesToNotConvert = "modules_to_not_convert"
        }
    }

    /// The rope_theta that the transformers-5 form keeps inside `rope_parameters`.
    struct RopeTheta: Decodable {
        var ropeTheta: Double?
        enum CodingKeys: String, CodingKey { case ropeTheta = "rope_theta" }
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func required(_ key: CodingKeys) throws -> Int {
            guard let v = try c.decodeIfPresent(Int.self, forKey: key) else {
                throw ConfigError.missingKey(key.stringValue)
            }
            return v
        }
        self.init(hiddenSize: try required(.hiddenSize), numAttentionHeads: try required(.numAttentionHeads),
                  qLoraRank: try c.decodeIfPresent(Int.self, forKey: .qLoraRank), kvLoraRank: try required(.kvLoraRank),
                  qkNopeHeadDim: try required(.qkNopeHeadDim), qkRopeHeadDim: try required(.qkRopeHeadDim),
                  vHeadDim: try required(.vHeadDim))
        rmsNormEps = try c.decodeIfPresent(Float.self, forKey: .rmsNormEps) ?? rmsNormEps
        ropeTheta = try c.decodeIfPresent(Double.self, forKey: .ropeTheta) ?? ropeTheta
        if let params = try c.decodeIfPresent(RopeScaling.self, forKey: .ropeParameters) {
            ropeScaling = params
            if let theta = try c.decodeIfPresent(RopeTheta.self, forKey: .ropeParameters)?.ropeTheta { ropeTheta = theta }
        } else {
            ropeScaling = try c.decodeIfPresent(RopeScaling.self, forKey: .ropeScaling)
        }
        if ropeScaling?.type == "default" { ropeScaling = nil }
        ropeInterleave = try c.decodeIfPresent(Bool.self, forKey: .ropeInterleave) ?? ropeInterleave
        attentionBias = try c.decodeIfPresent(Bool.self, forKey: .attentionBias) ?? attentionBias
        maxPositionEmbeddings = try c.decodeIfPresent(Int.self, forKey: .maxPositionEmbeddings) ?? maxPositionEmbeddings
        numHiddenLayers = try c.decodeIfPresent(Int.self, forKey: .numHiddenLayers)
        useGatedAttn = try c.decodeIfPresent(Bool.self, forKey: .useGatedAttn) ?? useGatedAttn
        gatedAttnAct = try c.decodeIfPresent(String.self, forKey: .gatedAttnAct) ?? gatedAttnAct
        useBias = try c.decodeIfPresent(Bool.self, forKey: .useBias) ?? useBias
        gatedAttnGranularity = try c.decodeIfPresent(String.self, forKey: .gatedAttnGranularity) ?? gatedAttnGranularity
        gatedAttnPlacement = try c.decodeIfPresent(String.self, forKey: .gatedAttnPlacement) ?? gatedAttnPlacement
        gatedAttnPacking = try c.decodeIfPresent(String.self, forKey: .gatedAttnPacking) ?? gatedAttnPacking
        let quantization = try c.decodeIfPresent(Quantization.self, forKey: .quantizationConfig)
        weightBlockSize = quantization?.weightBlockSize
        quantMethod = quantization?.quantMethod
        quantFormat = quantization?.fmt
        modulesToNotConvert = quantization?.modulesToNotConvert
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(hiddenSize, forKey: .hiddenSize)
        try c.encode(numAttentionHeads, forKey: .numAttentionHeads)
        try c.encode(qLoraRank, forKey: .qLoraRank)   // null when absent, as HF writes it
        try c.encode(kvLoraRank, forKey: .kvLoraRank)
        try c.encode(qkNopeHeadDim, forKey: .qkNopeHeadDim)
        try c.encode(qkRopeHeadDim, forKey: .qkRopeHeadDim)
        try c.encode(vHeadDim, forKey: .vHeadDim)
        try c.encode(rmsNormEps, forKey: .rmsNormEps)
        try c.encode(ropeTheta, forKey: .ropeTheta)
        try c.encodeIfPresent(ropeScaling, forKey: .ropeScaling)
        try c.encode(ropeInterleave, forKey: .ropeInterleave)
        try c.encode(attentionBias, forKey: .attentionBias)
        try c.encode(maxPositionEmbeddings, forKey: .maxPositionEmbeddings)
        try c.encodeIfPresent(numHiddenLayers, forKey: .numHiddenLayers)
        try c.encode(useGatedAttn, forKey: .useGatedAttn)
        try c.encode(gatedAttnAct, forKey: .gatedAttnAct)
        try c.encode(useBias, forKey: .useBias)
        // The gate's form: written only when it is not FastDeploy's (element-wise, separate), so
        // configs and their hashes stay as they were for that form.
        if gatedAttnGranularity != "element" { try c.encode(gatedAttnGranularity, forKey: .gatedAttnGranularity) }
        if gatedAttnPlacement != "separate" { try c.encode(gatedAttnPlacement, forKey: .gatedAttnPlacement) }
        if gatedAttnPacking != "interleaved" { try c.encode(gatedAttnPacking, forKey: .gatedAttnPacking) }
        if weightBlockSize != nil || quantMethod != nil || quantFormat != nil || modulesToNotConvert != nil {
            try c.encode(Quantization(weightBlockSize: weightBlockSize, quantMethod: quantMethod, fmt: quantFormat,
                                      modulesToNotConvert: modulesToNotConvert), forKey: .quantizationConfig)
        }
    }

    /// Decodes `config.json` bytes; errors say which key is wrong. The JSON is first checked
    /// strictly (`StrictJSON`): a key given twice is refused, since Python's json (what HF
    /// reads it with) keeps the last value where Foundation keeps the first.
    public static func decode(json data: Data, file: String = "config.json") throws -> MLAConfig {
        do {
            try StrictJSON.validate(data)
        } catch let error as StrictJSON.DuplicateKey {
            throw ConfigError.duplicateKey(file: file, key: error.path)
        } catch {
            throw ConfigError.notJSON(file: file, detail: "\(error)")
        }
        do {
            return try JSONDecoder().decode(MLAConfig.self, from: data)
        } catch let error as ConfigError {
            throw error
        } catch let DecodingError.typeMismatch(type, context), let DecodingError.valueNotFound(type, context) {
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            throw ConfigError.badValue(file: file, key: path, detail: "it must be \(typeName(type))")
        } catch let DecodingError.dataCorrupted(context) where !context.codingPath.isEmpty {
            // A number of the wrong kind (256.5 where an integer belongs, or one too large).
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            throw ConfigError.badValue(file: file, key: path, detail: "it must be \(typeName(Self.keyTypes[path] ?? Int.self)) (\(context.debugDescription))")
        } catch DecodingError.dataCorrupted where integerKey(notHeldIn: data) != nil {
            // Valid JSON (checked above) that the decoder calls corrupted: a number of the wrong kind.
            throw ConfigError.badValue(file: file, key: integerKey(notHeldIn: data)!, detail: "it must be an integer (no fraction, within 64 bits)")
        } catch let DecodingError.dataCorrupted(context) {
            throw ConfigError.notJSON(file: file, detail: context.underlyingError.map { "\($0)" } ?? context.debugDescription)
        } catch {
            throw ConfigError.notJSON(file: file, detail: "\(error)")
        }
    }

    /// Keys (dotted for nested ones) whose values are integers.
    static let integerKeys = ["hidden_size", "num_attention_heads", "q_lora_rank", "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim",
                              "v_head_dim", "max_position_embeddings", "num_hidden_layers", "rope_scaling.original_max_position_embeddings",
                              "rope_parameters.original_max_position_embeddings"]

    /// The first integer key whose value in `data` is a number but not an integer that fits.
    static func integerKey(notHeldIn data: Data) -> String? {
        guard let top = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return nil }
        for key in integerKeys {
            var value: Any? = top
            for part in key.split(separator: ".") { value = (value as? [String: Any])?[String(part)] }
            guard let number = value as? NSNumber, !(value is Bool) else { continue }
            let d = number.doubleValue
            if d.rounded() != d || abs(d) >= 9.2e18 { return key }
        }
        return nil
    }

    /// What a key holds, for messages about a value of the wrong kind.
    static let keyTypes: [String: Any.Type] = ["rms_norm_eps": Float.self, "rope_theta": Double.self]

    /// A Swift type as the message names it.
    static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is Int.Type: return "an integer"
        case is Float.Type, is Double.Type: return "a number"
        case is Bool.Type: return "true or false"
        case is String.Type: return "a string"
        default: return "\(type)"
        }
    }

    /// The largest config.json read (a model's is a few kB).
    public static let maxConfigBytes = 16 << 20

    /// Reads and decodes a `config.json` file.
    public static func load(path: String) throws -> MLAConfig {
        let data: Data
        do throws(InputFileError) {
            data = try RegularFile.read(path, limit: maxConfigBytes, what: "config.json")
        } catch let error {
            guard case .cannotOpen = error.problem else { throw error }
            throw ConfigError.unreadable(file: path)
        }
        let config = try decode(json: data, file: path)
        // quantization_config is the file's own business: name the file with its key.
        do { try config.validateQuantization() } catch let error as ConfigError { throw ConfigError.inFile(file: path, error) }
        return config
    }
}
