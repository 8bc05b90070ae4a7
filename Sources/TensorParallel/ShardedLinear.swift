import TensorCore

/// One rank's part of a linear layer `Y = X·Wᵀ + b`, `W [out, in]`: the block its `partition`
/// names, held by a `WeightStorage`. The one core under the three layouts (`ReplicatedLinear`,
/// `ColumnParallelLinear`, `RowParallelLinear`), which add only their collective.
///
/// The bias follows the partition's output rows (a column layer holds its slice, the others all
/// of it) and is stored in the storage's `activations`, like the layer's output.
public struct ShardedLinear: Sendable {
    public let name: String
    /// The weight's global shape, `[out, in]`.
    public let inFeatures: Int
    public let outFeatures: Int
    public let partition: Partition
    /// This rank's block, `[out, in]` or `[in, out]` as its order says.
    public let storage: any WeightStorage
    public let bias: AnyVector?          // [out] or, column-parallel, [out/tp]

    /// Reads this rank's block of `name.weight` (and `name.bias`) from `source` and keeps it in
    /// `storage` (or the storage it resolves to for this tensor), in `order`. Only the rank's own
    /// block is ever asked for.
    public init(name: String, inFeatures: Int, outFeatures: Int, partition: Partition, bias hasBias: Bool,
                source: WeightSource, initializer: Initializer, biasInitializer: Initializer,
                order: WeightOrder, storage: any WeightStorage.Type) throws {
        self.name = name
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        self.partition = partition
        let rows = partition.rows(of: outFeatures)
        let held = storage.resolved(for: name + ".weight", in: source)
        self.storage = try held.load(name + ".weight", from: source, shape: Shape(outFeatures, inFeatures), rows: rows,
                                    cols: partition.columns(of: inFeatures), order: order, initializer: initializer)
        bias = hasBias ? AnyVector(try source.vector(name + ".bias", count: outFeatures, range: rows, initializer: biasInitializer),
                                   storedAs: held.activations) : nil
    }

    /// Output and input features of this rank's block.
    public var localOut: Int { partition.rows(of: outFeatures).count }
    public var localIn: Int { partition.columns(of: inFeatures).count }

    /// `y = x·Wᵀ` on this rank's block, accumulated in f32, without the bias:
    /// x `[T, localIn]` → y `[T, localOut]` (y preallocated). Returns the kernel that ran it.
    /// With `.fixedOrder` the product runs on `FixedOrderGemm` over the storage's operand (each
    /// element's order fixed, whatever T and whichever slice of the output this rank holds).
    @discardableResult
    public func product(_ x: Matrix, into y: inout Matrix, kernels: ProductKernels = .fastest) throws -> GemmKernel {
        guard kernels == .fixedOrder else { return try storage.apply(x, into: &y) }
        return try FixedOrderGemm.linear(x, weight: storage.operand, outIn: storage.order == .outIn, into: &y)
    }

    /// The layer's output as it is stored: the bias added in f32 to the accumulated product, then
    /// one rounding to the storage's `activations` (HF's `nn.Linear` on bf16 tensors: the bias
    /// inside the product, one rounding of the output).
    public func finish(_ y: inout Matrix) throws {
        if let bias { try y.addRowBias(bias) }
        y.round(to: storage.activations)
    }
}
