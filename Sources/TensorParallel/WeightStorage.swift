import TensorCore

/// How a linear layer holds its block of the weight and multiplies by it: the storage axis of a
/// layer, kept apart from the sharding axis (`Partition`: which block a rank holds). vLLM's
/// `LinearMethodBase` (`create_weights`, `apply`) draws the same line, so that a new format is
/// one new method, not a copy of every layer.
///
/// A conforming type is both the strategy and what it loads: its static members say how a block
/// is read and what its layer's outputs are stored in; an instance is one rank's block, held in
/// that format. Layers and the model hold `any WeightStorage` and pass the type
/// (`any WeightStorage.Type`) where they build one, so neither names a format.
///
/// A new storage — say fp8 e4m3 with one f32 scale per 128×128 block, multiplied as W8A16 — is
/// one new conforming type plus its GEMM kernel. It provides:
/// - `activations`: what its layer's outputs, and so the model's activations, are stored in
///   (bf16 for W8A16); the layer rounds to it after the bias, and the model's stages round to it;
/// - `forwardOrder`: the order (`[out, in]` or `[in, out]`) its kernel is fastest on, for
///   layers used only through `apply`;
/// - `load`: its block `rows × cols` of a tensor from a `WeightSource`, in the order asked —
///   data already in this format taken as stored, anything else converted once, and never more
///   than the rank's own block held at a time;
/// - `bytes`: every byte it holds (values and scales);
/// - `apply`: `y = x·Wᵀ` for x `[T, in]` into y `[T, out]`, accumulated in f32, through
///   `Gemm` or its own kernel — no bias and no rounding: the layer adds the bias and rounds
///   (`ShardedLinear.finish`), after the reduce where there is one;
/// - `operand`: the block as a matrix a GEMM reads directly, in `order`, for the kernels that
///   read a weight themselves (absorbed attention's W_UK and W_UV, export); a format `Gemm`
///   cannot read returns its values converted to `activations` (what vLLM does for MLA's
///   absorbed W_UK / W_UV under fp8).
public protocol WeightStorage: Sendable {
    /// What a layer with this storage stores its outputs in.
    static var activations: Precision { get }
    /// The order a weight used only through `apply` is kept in.
    static var forwardOrder: WeightOrder { get }
    /// Rows `rows` × columns `cols` of the tensor `name` (global shape `shape`, `[out, in]`)
    /// from `source`, kept in `order`.
    static func load(_ name: String, from source: WeightSource, shape: Shape, rows: Range<Int>, cols: Range<Int>,
                     order: WeightOrder, initializer: Initializer) throws -> Self

    /// The order this block is kept in.
    var order: WeightOrder { get }
    /// Bytes held by this block.
    var bytes: Int { get }
    /// The block as a GEMM operand: `[out, in]` (order `.outIn`) or `[in, out]` (`.inOut`).
    var operand: AnyMatrix { get }
    /// `y = x·Wᵀ` accumulated in f32 (no bias, not rounded): x `[T, in]` → y `[T, out]`, y
    /// preallocated. Returns the kernel that ran the product.
    func apply(_ x: Matrix, into y: inout Matrix) throws -> GemmKernel

    /// The storage that holds tensor `name` of `source` under this format: this one, unless the
    /// format follows how a checkpoint stores each tensor (fp8: a tensor an fp8 checkpoint keeps
    /// in bf16 stays bf16).
    static func resolved(for name: String, in source: WeightSource) -> any WeightStorage.Type
    /// The storage for a weight that attention kernels read through `operand` themselves (MLA's
    /// absorbed W_UK and W_UV, kv_b_proj's rows): this one, or for a format `Gemm` cannot read, the
    /// format it dequantizes to once at load (vLLM's MLA backend does the same under fp8).
    static var kernelOperandStorage: any WeightStorage.Type { get }
    /// A source whose f32 blocks are the values this format holds of `source`'s weights, for an
    /// f32 reference of the same model: `source` itself for formats that keep the source's values
    /// up to rounding (f32, bf16); the dequantized fp8 values for fp8.
    static func referenceValues(_ source: WeightSource) -> WeightSource
    /// The `--quantization` this format is (none for f32 and bf16).
    static var quantization: WeightQuantization { get }
}

extension WeightStorage {
    public static func resolved(for name: String, in source: WeightSource) -> any WeightStorage.Type { Self.self }
    public static var kernelOperandStorage: any WeightStorage.Type { Self.self }
    public static func referenceValues(_ source: WeightSource) -> WeightSource { source }
    public static var quantization: WeightQuantization { .none }

    /// What this block's layer stores its outputs in.
    public var activations: Precision { Self.activations }

    /// A format `Gemm` reads directly (f32, bf16) multiplies through its operand: `Gemm` picks
    /// the kernel from the precisions. A format with its own kernel implements `apply` itself.
    @discardableResult
    public func apply(_ x: Matrix, into y: inout Matrix) throws -> GemmKernel {
        try linear(x, operand, order: order, into: &y)
    }
}

extension Precision {
    /// The storage that holds weights in this precision and stores its outputs in it too
    /// (`--dtype f32` or `bf16`; `--quantization fp8` is `FP8BlockStorage`).
    public var storage: any WeightStorage.Type {
        switch self {
        case .f32: F32Storage.self
        case .bf16: BF16Storage.self
        }
    }
}

/// `--quantization`: how the projections' weights are quantized beyond their dtype (the
/// vocabulary of vLLM and SGLang).
public enum WeightQuantization: String, CaseIterable, Codable, Sendable {
    /// Weights as `--dtype` holds them.
    case none
    /// fp8 e4m3 with one f32 scale per 128×128 tile, activations in bf16 (W8A16): `FP8BlockStorage`.
    case fp8

    /// The storage of a model held with this quantization and activations in `precision`.
    public func storage(activations precision: Precision) -> any WeightStorage.Type {
        switch self {
        case .none: precision.storage
        case .fp8: FP8BlockStorage.self
        }
    }
}
