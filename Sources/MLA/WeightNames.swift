/// HF checkpoint names of one layer's attention tensors (`model.layers.{L}.self_attn.*`).
public struct WeightNames: Sendable {
    public let layer: Int
    public let prefix: String

    public init(layer: Int) {
        self.layer = layer
        prefix = "model.layers.\(layer).self_attn."
    }

    public var qAProj: String { prefix + "q_a_proj" }
    public var qALayernorm: String { prefix + "q_a_layernorm.weight" }
    public var qBProj: String { prefix + "q_b_proj" }
    public var qProj: String { prefix + "q_proj" }
    public var kvAProj: String { prefix + "kv_a_proj_with_mqa" }
    public var kvALayernorm: String { prefix + "kv_a_layernorm.weight" }
    public var kvBProj: String { prefix + "kv_b_proj" }
    public var gate: String { prefix + "gate" }
    public var oProj: String { prefix + "o_proj" }

    /// The modules DeepSeek-V3's fp8 checkpoint stores as F8_E4M3 with block scales; PR #7404's
    /// gate is not one of them (its checkpoints keep it in bf16).
    public static let fp8Modules = ["q_a_proj", "q_b_proj", "q_proj", "kv_a_proj_with_mqa", "kv_b_proj", "o_proj"]

    /// Whether `tensor` (a full name ending in `.weight`) is one of `fp8Modules`.
    public static func isFP8Module(_ tensor: String) -> Bool {
        fp8Modules.contains { tensor.hasSuffix("." + $0 + ".weight") }
    }
}
