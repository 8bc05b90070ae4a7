import TensorCore

/// How a layer keeps its weight in memory.
public enum WeightOrder: String, Sendable, Codable {
    /// PyTorch's `[out, in]`, as checkpoints hold it: the forward is `x·Wᵀ`.
    case outIn
    /// `[in, out]`, transposed once when the layer is built: the forward is `x·W`, and OpenBLAS
    /// packs a non-transposed operand faster (measured ≈ 5–9% off DeepSeek-V3's T=256 prefill here).
    /// For layers used only through `forward`; code that reads `weight` as `[out, in]` must not pick it.
    /// Each storage names the order its kernel prefers (`WeightStorage.forwardOrder`).
    case inOut
}

/// `y = x·Wᵀ` for a weight kept in `order`: `[out, in]` or `[in, out]`, in either precision (the
/// kernel layer dispatches on it). Returns the kernel that ran.
@inline(__always) @discardableResult
func linear(_ x: Matrix, _ w: AnyMatrix, order: WeightOrder, into y: inout Matrix) throws -> GemmKernel {
    switch order {
    case .outIn: try Gemm.linear(x, weight: w, into: &y)
    case .inOut: try Gemm.linearNN(x, weight: w, into: &y)
    }
}
