import TensorCore

/// What every parallel layer reports for the sharding plan, read from its `ShardedLinear` core.
public protocol ParallelLayer {
    /// The layer's block of the weight, its partition and its storage.
    var core: ShardedLinear { get }
}

extension ParallelLayer {
    public var name: String { core.name }
    public var layout: Layout { core.partition.layout }
    /// The weight's global shape `[out, in]`.
    public var globalShape: Shape { Shape(core.outFeatures, core.inFeatures) }
    /// This rank's block as its storage holds it.
    public var storage: any WeightStorage { core.storage }
    /// This rank's weight as a GEMM operand, in `order` (the storage's `operand`).
    public var weight: AnyMatrix { core.storage.operand }
    public var order: WeightOrder { core.storage.order }
    /// This rank's bias, stored like the layer's output.
    public var bias: AnyVector? { core.bias }
    /// Output and input features of this rank's weight.
    public var localOut: Int { core.localOut }
    public var localIn: Int { core.localIn }
    /// This rank's weight shape, `[out, in]` whatever the order it is kept in.
    public var localShape: Shape { Shape(localOut, localIn) }
    /// The weight as `[out, in]` (a transposed copy when the order is `.inOut`: for export, not the hot path).
    public var weightOutIn: AnyMatrix { order == .outIn ? weight : weight.transposed() }
    /// What the layer's output is stored in (its storage's `activations`).
    public var precision: Precision { core.storage.activations }
    /// Bytes of weight and bias held by this rank, as stored.
    public var localBytes: Int { core.storage.bytes + (bias?.bytes ?? 0) }

    /// `y = x·Wᵀ + b` on this rank's block alone (no collective), stored in the layer's precision.
    func forwardLocally(_ x: Matrix, into y: inout Matrix, kernels: ProductKernels) throws -> GemmKernel {
        let kernel = try core.product(x, into: &y, kernels: kernels)
        try core.finish(&y)
        return kernel
    }
}

/// `Y = X·Wᵀ + b` with the full weight on every rank.
///
/// Partition: none — `W [out, in]` and `b [out]` are replicated.
/// Collective: none. Input and output are full width on every rank.
public struct ReplicatedLinear: ParallelLayer {
    public let core: ShardedLinear      // W [out, in] (order .outIn) or [in, out] (.inOut), b [out]

    public init(name: String, inFeatures: Int, outFeatures: Int, bias hasBias: Bool,
                source: WeightSource, initializer: Initializer, biasInitializer: Initializer = .random(std: 0.02),
                order: WeightOrder = .outIn, storage: any WeightStorage.Type = F32Storage.self) throws {
        core = try ShardedLinear(name: name, inFeatures: inFeatures, outFeatures: outFeatures,
                                 partition: Partition(.replicated, of: name, inFeatures: inFeatures, outFeatures: outFeatures, shard: .whole),
                                 bias: hasBias, source: source, initializer: initializer, biasInitializer: biasInitializer,
                                 order: order, storage: storage)
    }

    /// `y = x·Wᵀ + b`: x `[T, in]` → y `[T, out]` (y preallocated), stored in the layer's precision.
    /// Returns the kernel that ran the product.
    @discardableResult
    public func forward(_ x: Matrix, into y: inout Matrix, kernels: ProductKernels = .fastest) throws -> GemmKernel {
        try forwardLocally(x, into: &y, kernels: kernels)
    }
}

/// `Y = X·Wᵀ + b` with `W [out, in]` split along its output rows (Megatron's column parallel).
///
/// Partition: rank r holds rows `[r·out/tp, (r+1)·out/tp)` of W and the same slice of b:
///
///     W [out, in]          rank 0 ┃ rows 0 ..< out/tp
///                          rank 1 ┃ rows out/tp ..< 2·out/tp   → Y_r [T, out/tp]
///                          ...
/// Collective: none. The output stays sharded (`Y_r` is Y's columns for rank r): the
/// row-parallel layer after it consumes exactly those columns.
public struct ColumnParallelLinear: ParallelLayer {
    public let shard: Shard
    public let core: ShardedLinear      // W [out/tp, in] (order .outIn) or [in, out/tp] (.inOut), b [out/tp]
    /// The global output rows this rank holds.
    public var outRange: Range<Int> { core.partition.rows(of: core.outFeatures) }

    public init(name: String, inFeatures: Int, outFeatures: Int, bias hasBias: Bool, shard: Shard,
                source: WeightSource, initializer: Initializer, biasInitializer: Initializer = .random(std: 0.02),
                order: WeightOrder = .outIn, storage: any WeightStorage.Type = F32Storage.self) throws {
        self.shard = shard
        core = try ShardedLinear(name: name, inFeatures: inFeatures, outFeatures: outFeatures,
                                 partition: Partition(.column, of: name, inFeatures: inFeatures, outFeatures: outFeatures, shard: shard),
                                 bias: hasBias, source: source, initializer: initializer, biasInitializer: biasInitializer,
                                 order: order, storage: storage)
    }

    /// `y_r = x·W_rᵀ + b_r`: x `[T, in]` → y `[T, out/tp]` (y preallocated), stored in the layer's
    /// precision. Returns the kernel that ran the product.
    @discardableResult
    public func forward(_ x: Matrix, into y: inout Matrix, kernels: ProductKernels = .fastest) throws -> GemmKernel {
        try forwardLocally(x, into: &y, kernels: kernels)
    }
}

/// `Y = X·Wᵀ + b` with `W [out, in]` split along its input columns (Megatron's row parallel).
///
/// Partition: rank r holds columns `[r·in/tp, (r+1)·in/tp)` of every row of W, and takes the
/// matching columns of X — exactly what a column-parallel layer before it produced:
///
///     W [out, in]   rank 0   rank 1   ...        Y = Σ_r X_r·W_rᵀ  + b
///                   ┃cols 0..<in/tp┃in/tp..<2in/tp┃
/// Collective: one allreduce (sum) of the `[T, out]` partial products, in the precision the
/// `Collectives` were built with. The bias is replicated and added exactly once, after the reduce.
public struct RowParallelLinear: ParallelLayer {
    public let shard: Shard
    public let core: ShardedLinear      // W [out, in/tp] (order .outIn) or [in/tp, out] (.inOut), b [out] replicated
    /// The global input columns this rank holds.
    public var inRange: Range<Int> { core.partition.columns(of: core.inFeatures) }

    public init(name: String, inFeatures: Int, outFeatures: Int, bias hasBias: Bool, shard: Shard,
                source: WeightSource, initializer: Initializer, biasInitializer: Initializer = .random(std: 0.02),
                order: WeightOrder = .outIn, storage: any WeightStorage.Type = F32Storage.self) throws {
        self.shard = shard
        core = try ShardedLinear(name: name, inFeatures: inFeatures, outFeatures: outFeatures,
                                 partition: Partition(.row, of: name, inFeatures: inFeatures, outFeatures: outFeatures, shard: shard),
                                 bias: hasBias, source: source, initializer: initializer, biasInitializer: biasInitializer,
                                 order: order, storage: storage)
    }

    /// This rank's partial product `x_r·W_rᵀ` `[T, out]` as accumulated (f32, whatever the
    /// storage), before the allreduce and without the bias. Returns the kernel that ran it.
    @discardableResult
    public func partial(_ x: Matrix, into y: inout Matrix) throws -> GemmKernel {
        try core.product(x, into: &y)
    }

    /// Sums the ranks' partial products in place (in the collectives' reduction precision: a bf16
    /// reduction rounds each partial and each addition), then `finish`: `y = Σ_r y_r + b`.
    public func reduce(_ y: inout Matrix, collectives: Collectives) throws {
        try collectives.allReduceSum(&y)               // Σ over ranks
        try finish(&y)
    }

    /// The bias added once, after the reduce, and the output stored in the layer's precision (at
    /// tp = 1 this is HF's one rounding of `acc + b`).
    public func finish(_ y: inout Matrix) throws {
        try core.finish(&y)
    }

    /// `y = allreduce(x_r·W_rᵀ) + b`: x `[T, in/tp]` → y `[T, out]` (y preallocated).
    public func forward(_ x: Matrix, into y: inout Matrix, collectives: Collectives) throws {
        try partial(x, into: &y)                        // partial sum [T, out]
        try reduce(&y, collectives: collectives)
    }
}
