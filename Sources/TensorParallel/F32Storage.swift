import TensorCore

/// Weights held in f32 (`--dtype f32`): a checkpoint's f16, bf16 or fp8 values widened exactly,
/// seeded values as drawn; outputs stored in f32. Products run on OpenBLAS or oneDNN's f32 GEMM.
public struct F32Storage: WeightStorage {
    /// `[out, in]` (order `.outIn`) or `[in, out]` (`.inOut`).
    public let values: Matrix
    public let order: WeightOrder

    public init(_ values: Matrix, order: WeightOrder) {
        self.values = values
        self.order = order
    }

    public static var activations: Precision { .f32 }
    /// `[in, out]`: OpenBLAS packs a non-transposed operand faster (measured ≈ 5–9% off
    /// DeepSeek-V3's T=256 prefill here).
    public static var forwardOrder: WeightOrder { .inOut }

    /// `[in, out]` is read transposed by the source itself, so a seeded layer never holds two copies.
    public static func load(_ name: String, from source: WeightSource, shape: Shape, rows: Range<Int>, cols: Range<Int>,
                            order: WeightOrder, initializer: Initializer) throws -> F32Storage {
        switch order {
        case .outIn: F32Storage(try source.block(name, shape: shape, rows: rows, cols: cols, initializer: initializer), order: order)
        case .inOut: F32Storage(try source.blockTransposed(name, shape: shape, rows: rows, cols: cols, initializer: initializer), order: order)
        }
    }

    public var bytes: Int { values.count * MemoryLayout<Float>.size }
    public var operand: AnyMatrix { .f32(values) }
}
