import TensorCore

/// How a layer keeps its weight in memory.
public enum WeightOrder: String, Sendable, Codable {
    /// PyTorch's `[out, in]`, as checkpoints hold it: the forward is `x·Wᵀ`.
    case outIn
    /// `[in, out]`, transposed once when the layer is built: the forward is `x·W`, and OpenBLAS
    /// packs a non-transposed operand faster (measured ≈ 5–9% off DeepSeek-V3's T=256 prefill here).
    /// For layers used only through `forward`; code that reads `weight` as `[out, in]` must not pick it.
    case inOut

    /// Block `rows × cols` of `name` from `source`, in this order (`[in, out]` read transposed
    /// by the source itself, so a seeded layer never holds two copies).
    func load(_ source: WeightSource, _ name: String, shape: Shape, rows: Range<Int>, cols: Range<Int>,
              initializer: Initializer) throws -> Matrix {
        switch self {
        case .outIn: return try source.block(name, shape: shape, rows: rows, cols: cols, initializer: initializer)
        case .inOut: return try source.blockTransposed(name, shape: shape, rows: rows, cols: cols, initializer: initializer)
        }
    }
}

/// `y = x·Wᵀ` (+ y when `accumulate`) for a weight kept in `order`: `[out, in]` or `[in, out]`.
@inline(__always)
func linear(_ x: Matrix, _ w: Matrix, order: WeightOrder, into y: inout Matrix) throws {
    switch order {
    case .outIn: try Gemm.linear(x, weight: w, into: &y)
    case .inOut: try Gemm.linearNN(x, weight: w, into: &y)
    }
}

/// What every parallel layer reports for the sharding plan.
public protocol ParallelLayer {
    var name: String { get }
    var layout: Layout { get }
    /// The weight's global shape `[out, in]`.
    var globalShape: Shape { get }
    /// This rank's weight, in `order`.
    var weight: Matrix { get }
    var order: WeightOrder { get }
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
    public var weightOutIn: Matrix { order == .outIn ? weight : weight.transposed() }
}

/// `Y = X·Wᵀ + b` with the full weight on every rank.
///
/// Partition: none — `W [out, in]` and `b [out]` are replicated.
/// Collective: none. Input and output are full width on every rank.
public struct ReplicatedLinear: ParallelLayer {
    public let name: String
    public let order: WeightOrder
    public let weight: Matrix      // [out, in] (order .outIn) or [in, out] (.inOut)
    public let bias: [Float]?      // [out]
    public var layout: Layout { .replicated }
    /// Output and input features of this rank's weight.
    public var localOut: Int { order == .outIn ? weight.rows : weight.cols }
    public var localIn: Int { order == .outIn ? weight.cols : weight.rows }
    public var globalShape: Shape { localShape }
    public var localBytes: Int { 4 * (weight.count + (bias?.count ?? 0)) }

    public init(name: String, inFeatures: Int, outFeatures: Int, bias hasBias: Bool,
                source: WeightSource, initializer: Initializer, biasInitializer: Initializer = .random(std: 0.02),
                order: WeightOrder = .outIn) throws {
        guard inFeatures > 0 else { throw TPError.nonPositive(name: name + " in", width: inFeatures) }
        guard outFeatures > 0 else { throw TPError.nonPositive(name: name + " out", width: outFeatures) }
        self.name = name
        self.order = order
        weight = try order.load(source, name + ".weight", shape: Shape(outFeatures, inFeatures),
                                  rows: 0..<outFeatures, cols: 0..<inFeatures, initializer: initializer)
        bias = hasBias ? try source.vector(name + ".bias", count: outFeatures, range: 0..<outFeatures, initializer: biasInitializer) : nil
    }

    /// `y = x·Wᵀ + b`: x `[T, in]` → y `[T, out]` (y preallocated).
    public func forward(_ x: Matrix, into y: inout Matrix) throws {
        try linear(x, weight, order: order, into: &y)
        if let bias { try y.addRowBias(bias) }
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
    public let name: String
    public let shard: Shard
    public let inFeatures: Int
    public let outFeatures: Int
    /// The global output rows this rank holds.
    public let outRange: Range<Int>
    public let order: WeightOrder
    public let weight: Matrix      // [out/tp, in] (order .outIn) or [in, out/tp] (.inOut)
    public let bias: [Float]?      // [out/tp]
    public var layout: Layout { .column }
    public var localOut: Int { outRange.count }
    public var localIn: Int { inFeatures }
    public var globalShape: Shape { Shape(outFeatures, inFeatures) }
    public var localBytes: Int { 4 * (weight.count + (bias?.count ?? 0)) }

    public init(name: String, inFeatures: Int, outFeatures: Int, bias hasBias: Bool, shard: Shard,
                source: WeightSource, initializer: Initializer, biasInitializer: Initializer = .random(std: 0.02),
                order: WeightOrder = .outIn) throws {
        guard inFeatures > 0 else { throw TPError.nonPositive(name: name + " in", width: inFeatures) }
        self.name = name
        self.shard = shard
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        self.order = order
        outRange = try shard.range(of: outFeatures, for: name + " output")
        weight = try order.load(source, name + ".weight", shape: Shape(outFeatures, inFeatures),
                                  rows: outRange, cols: 0..<inFeatures, initializer: initializer)
        bias = hasBias ? try source.vector(name + ".bias", count: outFeatures, range: outRange, initializer: biasInitializer) : nil
    }

    /// `y_r = x·W_rᵀ + b_r`: x `[T, in]` → y `[T, out/tp]` (y preallocated).
    public func forward(_ x: Matrix, into y: inout Matrix) throws {
        try linear(x, weight, order: order, into: &y)
        if let bias { try y.addRowBias(bias) }
    }
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
    public let weight: Matrix      // [out, in/tp] (order .outIn) or [in/tp, out] (.inOut)
    public let bias: [Float]?      // [out], replicated
    public var layout: Layout { .row }
    public var localOut: Int { outFeatures }
    public var localIn: Int { inRange.count }
    public var globalShape: Shape { Shape(outFeatures, inFeatures) }
    public var localBytes: Int { 4 * (weight.count + (bias?.count ?? 0)) }

    public init(name: String, inFeatures: Int, outFeatures: Int, bias hasBias: Bool, shard: Shard,
                source: WeightSource, initializer: Initializer, biasInitializer: Initializer = .random(std: 0.02),
                order: WeightOrder = .outIn) throws {
        guard outFeatures > 0 else { throw TPError.nonPositive(name: name + " out", width: outFeatures) }
        self.name = name
        self.shard = shard
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        self.order = order
        inRange = try shard.range(of: inFeatures, for: name + " input")
        weight = try order.load(source, name + ".weight", shape: Shape(outFeatures, inFeatures),
                                  rows: 0..<outFeatures, cols: inRange, initializer: initializer)
        bias = hasBias ? try source.vector(name + ".bias", count: outFeatures, range: 0..<outFeatures, initializer: biasInitializer) : nil
    }

    /// This rank's partial product `x_r·W_rᵀ` `[T, out]`, before the allreduce and without the bias.
    public func partial(_ x: Matrix, into y: inout Matrix) throws {
        try linear(x, weight, order: order, into: &y)
    }

    /// Sums the ranks' partial products in place and adds the bias once: `y = Σ_r y_r + b`.
    public func reduce(_ y: inout Matrix, collectives: Collectives) throws {
        try collectives.allReduceSum(&y)               // Σ over ranks
        if let bias { try y.addRowBias(bias) }         // once, after the reduce
    }

    /// `y = allreduce(x_r·W_rᵀ) + b`: x `[T, in/tp]` → y `[T, out]` (y preallocated).
    public func forward(_ x: Matrix, into y: inout Matrix, collectives: Collectives) throws {
        try partial(x, into: &y)                        // partial sum [T, out]
        try reduce(&y, collectives: collectives)
    }
}
