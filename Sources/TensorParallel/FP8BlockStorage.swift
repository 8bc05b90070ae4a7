import TensorCore

/// Weights held in fp8 e4m3 with one f32 scale per 128×128 tile (`--quantization fp8`, W8A16):
/// one byte per element plus the scales, half of bf16's bytes. Outputs, and so the model's
/// activations, are stored in bf16.
///
/// Loading: a DeepSeek fp8 checkpoint's block is taken as stored — the rank's e4m3 bytes and the
/// scales of the tiles they touch (`WeightSource.fp8Block`), never a dequantized copy. Anything
/// else (a bf16 or f32 checkpoint, seeded weights) is quantized here once per tile of the *global*
/// tensor, scale = amax / 448 (DeepSeek-V3's rule): a rank reads the whole tile rows and columns
/// its block touches to find each tile's amax, so every tp gets the same bytes and scales. A shard
/// edge inside a tile is fine either way: the rank keeps that tile's scale.
///
/// Products: each weight element enters as bf16(e4m3 × scale) — how transformers loads an fp8
/// checkpoint into a bf16 module — through the fp8 row kernel for decode-sized T (bytes and
/// scales read directly) or a bf16 GEMM over tiles dequantized one at a time for prefill
/// (`FP8BlockMatrix.product`). So an fp8 model gives the bits of the bf16 model of its
/// dequantized weights.
public struct FP8BlockStorage: WeightStorage {
    public let values: FP8BlockMatrix

    public init(_ values: FP8BlockMatrix) { self.values = values }

    /// The tile size of quantization done here (an fp8 checkpoint's own is read with it).
    public static let blockSize = 128

    public static var activations: Precision { .bf16 }
    public static var quantization: WeightQuantization { .fp8 }
    /// `[out, in]`, always: the row kernel streams whole rows, the tiles are whole rows.
    public static var forwardOrder: WeightOrder { .outIn }
    public var order: WeightOrder { .outIn }

    /// A tensor an fp8 checkpoint keeps in another dtype stays in that checkpoint's precision (bf16).
    public static func resolved(for name: String, in source: WeightSource) -> any WeightStorage.Type {
        source.storedInFP8(name) == false ? BF16Storage.self : FP8BlockStorage.self
    }

    /// Kernels that read a weight themselves get its fp8 values dequantized to bf16 once at load.
    public static var kernelOperandStorage: any WeightStorage.Type { DequantizedFP8Storage.self }

    /// The f32 reference of an fp8 model sees its fp8 values.
    public static func referenceValues(_ source: WeightSource) -> WeightSource { FP8ValuesSource(source) }

    /// The block as stored in fp8 where the source has it so, else quantized from the source's values.
    /// The order asked is ignored: fp8 blocks are kept `[out, in]`.
    public static func load(_ name: String, from source: WeightSource, shape: Shape, rows: Range<Int>, cols: Range<Int>,
                            order: WeightOrder, initializer: Initializer) throws -> FP8BlockStorage {
        if let stored = try source.fp8Block(name, shape: shape, rows: rows, cols: cols, initializer: initializer) { return FP8BlockStorage(stored) }
        return FP8BlockStorage(try quantize(name, from: source, shape: shape, rows: rows, cols: cols, initializer: initializer))
    }

    /// Rows `rows` × columns `cols` of `name` quantized per global tile (`FP8BlockMatrix.quantizing`),
    /// read from `source` one strip of tile rows at a time.
    static func quantize(_ name: String, from source: WeightSource, shape: Shape, rows: Range<Int>, cols: Range<Int>,
                         initializer: Initializer) throws -> FP8BlockMatrix {
        do {
            return try FP8BlockMatrix.quantizing(rows: rows, cols: cols, of: shape, blockSize: blockSize) { r, c in
                try source.block(name, shape: shape, rows: r, cols: c, initializer: initializer)
            }
        } catch let tile as FP8Quantization.NonFiniteTile {
            throw WeightValueError.nonFinite(tensor: name, tile: (tile.row, tile.column))
        }
    }

    public var bytes: Int { values.bytes }
    /// The block dequantized to bf16 (a copy: for export and checks, not the hot path).
    public var operand: AnyMatrix { .bf16(values.dequantized()) }

    public func apply(_ x: Matrix, into y: inout Matrix) throws -> GemmKernel {
        try values.product(x, into: &y)
    }
}

/// The values an fp8 model holds, as f32 (each element e4m3 × its tile's scale, exactly): what an
/// f32 reference of an fp8 run computes with. Tensors an fp8 checkpoint keeps in another dtype,
/// and vectors, pass through.
public struct FP8ValuesSource: WeightSource {
    public let base: WeightSource

    public init(_ base: WeightSource) { self.base = base }

    public func block(_ name: String, shape: Shape, rows: Range<Int>, cols: Range<Int>, initializer: Initializer) throws -> Matrix {
        guard base.storedInFP8(name) != false else { return try base.block(name, shape: shape, rows: rows, cols: cols, initializer: initializer) }
        return try FP8BlockStorage.load(name, from: base, shape: shape, rows: rows, cols: cols, order: .outIn,
                                        initializer: initializer).values.dequantizedF32()
    }

    public func vector(_ name: String, count: Int, range: Range<Int>, initializer: Initializer) throws -> [Float] {
        try base.vector(name, count: count, range: range, initializer: initializer)
    }

    public func shape(of name: String) -> [Int]? { base.shape(of: name) }
    public func storedInFP8(_ name: String) -> Bool? { base.storedInFP8(name) }
}

/// An fp8 weight dequantized to bf16 once at load, for kernels that read a weight themselves
/// (MLA's absorbed W_UK and W_UV in kv_b_proj; vLLM's MLA backend does the same under fp8): the
/// fp8 values, stored or quantized as `FP8BlockStorage` makes them, held as bf16(e4m3 × scale).
public struct DequantizedFP8Storage: WeightStorage {
    public let held: BF16Storage

    public static var activations: Precision { .bf16 }
    public static var forwardOrder: WeightOrder { .outIn }

    public static func resolved(for name: String, in source: WeightSource) -> any WeightStorage.Type {
        source.storedInFP8(name) == false ? BF16Storage.self : DequantizedFP8Storage.self
    }

    public static func load(_ name: String, from source: WeightSource, shape: Shape, rows: Range<Int>, cols: Range<Int>,
                            order: WeightOrder, initializer: Initializer) throws -> DequantizedFP8Storage {
        let values = try FP8BlockStorage.load(name, from: source, shape: shape, rows: rows, cols: cols, order: .outIn,
                                              initializer: initializer).values.dequantized()                  // [rows, cols] bf16
        return DequantizedFP8Storage(held: BF16Storage(order == .outIn ? values : values.transposed(), order: order))
    }

    public var order: WeightOrder { held.order }
    public var bytes: Int { held.bytes }
    public var operand: AnyMatrix { held.operand }
}

/// A weight whose values cannot be held as asked.
public enum WeightValueError: Error, Equatable, CustomStringConvertible {
    /// A NaN or infinity in a tile being quantized to fp8: its amax, and so its scale, would not be finite.
    case nonFinite(tensor: String, tile: (Int, Int))

    public static func == (a: WeightValueError, b: WeightValueError) -> Bool { a.description == b.description }

    public var description: String {
        switch self {
        case let .nonFinite(tensor, tile):
            return "\(tensor) has a NaN or infinite value in its 128×128 tile (\(tile.0), \(tile.1)) — fp8 quantization needs finite weights; "
                + "fix the checkpoint, or run it without --quantization fp8"
        }
    }
}
