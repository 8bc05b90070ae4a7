import TensorCore

/// What every parallel layer reports for the sharding plan.
public protocol ParallelLayer {
    var name: String { get }
    var layout: Layout { get }
    /// The weight's global shape `[out, in]`.
    var globalShape: Shape { get }
    /// This rank's weight, in `order`, stored in its precision (f32, or bf16 for half the bytes).
    var weight: AnyMatrix { get }
    var order: WeightOrder { get }
    /// This rank's bias, in the weight's precision.
    var bias: AnyVector? { get }
    /// Output and input features of this rank's weight.
    var localOut: Int { get }
    var localIn: Int { get }
    /// Bytes of weight and bias held by this rank.
    var localBytes: Int { get }
}

extension ParallelLayer {
    /// This rank's weight shape, `[out, in]` whatever the order it is kept in.
    public var localShape: Shape { Shape(localOut, localIn) }
    /// The weight as `[out, in]` (a transposed copy when the order is `.inOut`: for export, not the hot path).
    public var weightOutIn: AnyMatrix { order == .outIn ? weight : weight.transposed() }
    /// What the weight is stored in; the layer's output is stored in it too.
    public var precision: Precision { weight.precision }
    /// Bytes of weight and bias held by this rank, in their precision.
    public var localBytes: Int { weight.bytes + (bias?.bytes ?? 0) }

    /// `y = x·Wᵀ + b` on this rank's weight alone (no collective), stored in the weight's precision.
    func forwardLocally(_ x: Matrix, into y: inout Matrix) throws -> GemmKernel {
        let kernel = try linear(x, weight, order: order, into: &y)
        try y.finishLinear(bias: bias, storing: precision)
        return kernel
    }
}

/// `Y = X·Wᵀ + b` with the full weight on every rank.
///
/// Partition: none — `W [out, in]` and `b [out]` are replicated.
/// Collective: none. Input and output are full width on every rank.
public struct ReplicatedLinear: ParallelLayer {
    public let name: String
    public let order: WeightOrder
    public let weight: AnyMatrix   // [out, in] (order .outIn) or [in, out] (.inOut)
    public let bias: AnyVector?    // [out]
    public var layout: Layout { .replicated }
    /// Output and input features of this rank's weight.
    public var localOut: Int { order == .outIn ? weight.rows : weight.cols }
    public var localIn: Int { order == .outIn ? weight.cols : weight.rows }
    public var globalShape: Shape { localShape }

    public init(name: String, inFeatures: Int, outFeatures: Int, bias hasBias: Bool,
                source: WeightSource, initializer: Initializer, biasInitializer: Initializer = .random(std: 0.02),
                order: WeightOrder = .outIn, storage: Precision = .f32) throws {
        guard inFeatures > 0 else { throw TPError.nonPositive(name: name + " in", width: inFeatures) }
        guard outFeatures > 0 else { throw TPError.nonPositive(name: name + " out", width: outFeatures) }
        self.name = name
        self.order = order
        weight = try order.load(source, name + ".weight", shape: Shape(outFeatures, inFeatures),
                                  rows: 0..<outFeatures, cols: 0..<inFeatures, initializer: initializer, storage: storage)
        bias = hasBias ? AnyVector(try source.vector(name + ".bias", count: outFeatures, range: 0..<outFeatures, initializer: biasInitializer),
                                   storedAs: storage) : nil
    }

    /// `y = x·Wᵀ + b`: x `[T, in]` → y `[T, out]` (y preallocated), stored in the weight's precision.
    /// Returns the kernel that ran the product.
    @discardableResult
    public func forward(_ x: Matrix, into y: inout Matrix) throws -> GemmKernel { try forwardLocally(x, into: &y) }
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
    public let name: String
    public let shard: Shard
    public let inFeatures: Int
    public let outFeatures: Int
    /// The global output rows this rank holds.
    public let outRange: Range<Int>
    public let order: WeightOrder
    public let weight: AnyMatrix   // [out/tp, in] (order .outIn) or [in, out/tp] (.inOut)
    public let bias: AnyVector?    // [out/tp]
    public var layout: Layout { .column }
    public var localOut: Int { outRange.count }
    public var localIn: Int { inFeatures }
    public var globalShape: Shape { Shape(outFeatures, inFeatures) }

    public init(name: String, inFeatures: Int, outFeatures: Int, bias hasBias: Bool, shard: Shard,
                source: WeightSource, initializer: Initializer, biasInitializer: Initializer = .random(std: 0.02),
                order: WeightOrder = .outIn, storage: Precision = .f32) throws {
        guard inFeatures > 0 else { throw TPError.nonPositive(name: name + " in", width: inFeatures) }
        self.name = name
        self.shard = shard
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        self.order = order
        outRange = try shard.range(of: outFeatures, for: name + " output")
        weight = try order.load(source, name + ".weight", shape: Shape(outFeatures, inFeatures),
                                  rows: outRange, cols: 0..<inFeatures, initializer: initializer, storage: storage)
        bias = hasBias ? AnyVector(try source.vector(name + ".bias", count: outFeatures, range: outRange, initializer: biasInitializer),
                                   storedAs: storage) : nil
    }

    /// `y_r = x·W_rᵀ + b_r`: x `[T, in]` → y `[T, out/tp]` (y preallocated), stored in the weight's
    /// precision. Returns the kernel that ran the product.
    @discardableResult
    public func forward(_ x: Matrix, into y: inout Matrix) throws -> GemmKernel { try forwardLocally(x, into: &y) }
}

/// `Y = X·Wᵀ + b` with `W [out, in]` split along its input columns (Megatron's row parallel).
///
/// Partition: rank r holds columns `[r·in/tp, (r+1)·in/tp)` of every row of W, and takes the
/// matching columns of X — exactly what a column-parallel layer before it produced:
///
///     W [out, in]   rank 0   rank 1   ...        Y = Σ_r X_r·W_rᵀ  + b
///                   ┃cols 0..<in/tp┃in/tp..<2in/tp┃
/// Collective: one allreduce (sum) of the `[T, out]` partial products. The bias is replicated
/// and added exactly once, after the reduce.
public struct RowParallelLinear: ParallelLayer {
    public let name: String
    public let shard: Shard
    public let inFeatures: Int
    public let outFeatures: Int
    /// The global input columns this rank holds.
    public let inRange: Range<Int>
    public let order: WeightOrder
    public let weight: AnyMatrix   // [out, in/tp] (order .outIn) or [in/tp, out] (.inOut)
    public let bias: AnyVector?    // [out], replicated
    public var layout: Layout { .row }
    public var localOut: Int { outFeatures }
    public var localIn: Int { inRange.count }
    public var globalShape: Shape { Shape(outFeatures, inFeatures) }

    public init(name: String, inFeatures: Int, outFeatures: Int, bias hasBias: Bool, shard: Shard,
                source: WeightSource, initializer: Initializer, biasInitializer: Initializer = .random(std: 0.02),
                order: WeightOrder = .outIn, storage: Precision = .f32) throws {
        guard outFeatures > 0 else { throw TPError.nonPositive(name: name + " out", width: outFeatures) }
        self.name = name
        self.shard = shard
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        self.order = order
        inRange = try shard.range(of: inFeatures, for: name + " input")
        weight = try order.load(source, name + ".weight", shape: Shape(outFeatures, inFeatures),
                                  rows: 0..<outFeatures, cols: inRange, initializer: initializer, storage: storage)
        bias = hasBias ? AnyVector(try source.vector(name + ".bias", count: outFeatures, range: 0..<outFeatures, initializer: biasInitializer),
                                   storedAs: storage) : nil
    }

    /// This rank's partial product `x_r·W_rᵀ` `[T, out]` as accumulated (f32, whatever the weight's
    /// precision), before the allreduce and without the bias. Returns the kernel that ran it.
    @discardableResult
    public func partial(_ x: Matrix, into y: inout Matrix) throws -> GemmKernel {
        try linear(x, weight, order: order, into: &y)
    }

    /// Sums the ranks' partial products in place (in the collectives' reduction precision: a bf16
    /// reduction rounds each partial and each addition), then `finish`: `y = Σ_r y_r + b`.
    public func reduce(_ y: inout Matrix, collectives: Collectives) throws {
        try collectives.allReduceSum(&y)               // Σ over ranks
        try finish(&y)
    }

    /// The bias added once, after the reduce, and the output stored in the weight's precision (at
    /// tp = 1 this is HF's one rounding of `acc + b`).
    public func finish(_ y: inout Matrix) throws {
        try y.finishLinear(bias: bias, storing: precision)
    }

    /// `y = allreduce(x_r·W_rᵀ) + b`: x `[T, in/tp]` → y `[T, out]` (y preallocated).
    public func forward(_ x: Matrix, into y: inout Matrix, collectives: Collectives) throws {
        try partial(x, into: &y)                        // partial sum [T, out]
        try reduce(&y, collectives: collectives)
    }
}
