import TensorCore

/// Weights held in bf16 (`--dtype bf16`): half the bytes of f32; a bf16 checkpoint's values as
/// stored, anything else rounded to nearest even once; outputs stored in bf16, as HF's bf16
/// forward stores them. Products take bf16 operands and accumulate in f32 (oneDNN's bf16
/// matmul, the bf16 decode row kernels, or the weight widened for OpenBLAS where bf16 is not
/// native: `Gemm` picks).
public struct BF16Storage: WeightStorage {
    /// `[out, in]` (order `.outIn`) or `[in, out]` (`.inOut`).
    public let values: BF16Matrix
    public let order: WeightOrder

    public init(_ values: BF16Matrix, order: WeightOrder) {
        self.values = values
        self.order = order
    }

    public static var activations: Precision { .bf16 }
    /// `[out, in]`: where oneDNN's bf16 matmul is fastest and the decode row kernel streams
    /// whole weight rows.
    public static var forwardOrder: WeightOrder { .outIn }

    /// Read through `WeightSource.bf16Block`, never widened as a whole.
    public static func load(_ name: String, from source: WeightSource, shape: Shape, rows: Range<Int>, cols: Range<Int>,
                            order: WeightOrder, initializer: Initializer) throws -> BF16Storage {
        let block = try source.bf16Block(name, shape: shape, rows: rows, cols: cols, initializer: initializer)   // [rows, cols]
        return BF16Storage(order == .outIn ? block : block.transposed(), order: order)
    }

    public var bytes: Int { values.bytes }
    public var operand: AnyMatrix { .bf16(values) }
}
