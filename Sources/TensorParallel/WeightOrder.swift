import TensorCore

/// How a layer keeps its weight in memory.
public enum WeightOrder: String, Sendable, Codable {
    /// PyTorch's `[out, in]`, as checkpoints hold it: the forward is `x·Wᵀ`.
    case outIn
    /// `[in, out]`, transposed once when the layer is built: the forward is `x·W`, and OpenBLAS
    /// packs a non-transposed operand faster (measured ≈ 5–9% off DeepSeek-V3's T=256 prefill here).
    /// For layers used only through `forward`; code that reads `weight` as `[out, in]` must not pick it.
    case inOut

    /// The order a forward-only projection is kept in for weights stored in `precision`: f32
    /// `[in, out]` (OpenBLAS's faster packing, above); bf16 `[out, in]`, where oneDNN's bf16 matmul
    /// is fastest and the decode row kernel streams whole weight rows.
    public static func forwardOnly(_ precision: Precision) -> WeightOrder {
        precision == .bf16 ? .outIn : .inOut
    }

    /// Block `rows × cols` of `name` from `source`, in this order and stored in `precision` (`[in,
    /// out]` f32 read transposed by the source itself, so a seeded layer never holds two copies; a
    /// bf16 weight through `WeightSource.bf16Block`, never widened as a whole).
    func load(_ source: WeightSource, _ name: String, shape: Shape, rows: Range<Int>, cols: Range<Int>,
              initializer: Initializer, storage precision: Precision) throws -> AnyMatrix {
        switch (self, precision) {
        case (.outIn, .f32): return .f32(try source.block(name, shape: shape, rows: rows, cols: cols, initializer: initializer))
        case (.inOut, .f32): return .f32(try source.blockTransposed(name, shape: shape, rows: rows, cols: cols, initializer: initializer))
        case (.outIn, .bf16): return .bf16(try source.bf16Block(name, shape: shape, rows: rows, cols: cols, initializer: initializer))
        case (.inOut, .bf16): return .bf16(try source.bf16Block(name, shape: shape, rows: rows, cols: cols, initializer: initializer).transposed())
        }
    }
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

extension Matrix {
    /// A linear layer's output as the layer stores it: `bias` added in f32 to the accumulated
    /// product, then one rounding to the weight's precision (HF's `nn.Linear` on bf16 tensors:
    /// the bias inside the product, one rounding of the output).
    mutating func finishLinear(bias: AnyVector?, storing precision: Precision) throws {
        if let bias { try addRowBias(bias) }
        round(to: precision)
    }
}
