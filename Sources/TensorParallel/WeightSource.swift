import TensorCore

/// How a seeded weight is drawn when no checkpoint supplies it.
public enum Initializer: Sendable {
    /// Mean 0, standard deviation `std`.
    case random(std: Float)
    /// Mean 1, standard deviation `spread`: norm weights.
    case nearOne(spread: Float)
}

/// Where a rank's weight blocks come from: seeded random values or a checkpoint.
///
/// A source is asked only for the rank's own block (`rows × cols` of the global tensor),
/// so no rank ever materialises another rank's shard.
public protocol WeightSource {
    /// Rows `rows` × columns `cols` of the 2-D tensor `name` whose global shape is `shape`.
    func block(_ name: String, shape: Shape, rows: Range<Int>, cols: Range<Int>, initializer: Initializer) throws -> Matrix
    /// Elements `range` of the 1-D tensor `name` of length `count`.
    func vector(_ name: String, count: Int, range: Range<Int>, initializer: Initializer) throws -> [Float]
    /// The same block transposed, `[cols, rows]`, for layers that keep their weight `[in, out]`.
    /// The default transposes `block`'s result (two copies for a moment); a source that can
    /// write the transposed order directly should.
    func blockTransposed(_ name: String, shape: Shape, rows: Range<Int>, cols: Range<Int>, initializer: Initializer) throws -> Matrix
    /// The same block stored in bf16: a bf16 tensor's values as they are, anything else rounded to
    /// nearest even once. The default rounds `block`'s values a bounded block of rows at a time,
    /// so no f32 copy of the whole weight is ever held; a checkpoint copies bf16 data as is.
    func bf16Block(_ name: String, shape: Shape, rows: Range<Int>, cols: Range<Int>, initializer: Initializer) throws -> BF16Matrix
    /// The stored shape of `name`, where the source has one (a checkpoint); nil for seeded
    /// weights, which take whatever shape they are asked for.
    func shape(of name: String) -> [Int]?
    /// The same block as stored in fp8 e4m3 with its block scales — the block's bytes and the
    /// scales of every tile it touches, nothing more — or nil where the source does not hold
    /// `name` in fp8 (seeded weights, any other dtype). Never dequantized.
    func fp8Block(_ name: String, shape: Shape, rows: Range<Int>, cols: Range<Int>, initializer: Initializer) throws -> FP8BlockMatrix?
    /// Whether the source says how `name` is quantized: true where it is stored in fp8, false
    /// where a checkpoint that declares fp8 quantization keeps it in another dtype (DeepSeek-V3's
    /// norms and any module it leaves unquantized), nil where the source declares no quantization
    /// (seeded weights, a bf16 or f32 checkpoint): an fp8 model then quantizes every projection itself.
    func storedInFP8(_ name: String) -> Bool?
}

extension WeightSource {
    public func shape(of name: String) -> [Int]? { nil }
    public func fp8Block(_ name: String, shape: Shape, rows: Range<Int>, cols: Range<Int>, initializer: Initializer) throws -> FP8BlockMatrix? { nil }
    public func storedInFP8(_ name: String) -> Bool? { nil }

    public func blockTransposed(_ name: String, shape: Shape, rows: Range<Int>, cols: Range<Int>, initializer: Initializer) throws -> Matrix {
        try block(name, shape: shape, rows: rows, cols: cols, initializer: initializer).transposed()
    }

    public func bf16Block(_ name: String, shape: Shape, rows: Range<Int>, cols: Range<Int>, initializer: Initializer) throws -> BF16Matrix {
        try BF16Matrix(rows: rows.count, cols: cols.count) { local, scratch in
            let part = try block(name, shape: shape, rows: rows.lowerBound + local.lowerBound ..< rows.lowerBound + local.upperBound,
                                 cols: cols, initializer: initializer)
            _ = scratch.update(fromContentsOf: part.storage)
        }
    }
}

/// Seeded, TP-independent random weights (see `SeededInit`).
public struct SeededWeights: WeightSource {
    public let seed: UInt64

    public init(seed: UInt64) { self.seed = seed }

    public func block(_ name: String, shape: Shape, rows: Range<Int>, cols: Range<Int>, initializer: Initializer) throws -> Matrix {
        generate(name, shape: shape, rows: rows, cols: cols, initializer: initializer, transposed: false)
    }

    /// Generated straight into `[cols, rows]` order: no `[rows, cols]` copy is ever held.
    public func blockTransposed(_ name: String, shape: Shape, rows: Range<Int>, cols: Range<Int>, initializer: Initializer) throws -> Matrix {
        generate(name, shape: shape, rows: rows, cols: cols, initializer: initializer, transposed: true)
    }

    private func generate(_ name: String, shape: Shape, rows: Range<Int>, cols: Range<Int>, initializer: Initializer,
                          transposed: Bool) -> Matrix {
        let (mean, std) = initializer.meanStd
        let (r, c) = transposed ? (cols.count, rows.count) : (rows.count, cols.count)
        return Matrix(rows: r, cols: c) { out in
            SeededInit.write(name: name, seed: seed, rows: rows, cols: cols, globalCols: shape.dims.last ?? 1,
                             mean: mean, std: std, transposed: transposed, into: out)
        }
    }

    /// The seeded f32 values rounded to bf16 a block of rows at a time: the same bf16 weights at
    /// every tp, since each element is rounded on its own.
    public func bf16Block(_ name: String, shape: Shape, rows: Range<Int>, cols: Range<Int>, initializer: Initializer) throws -> BF16Matrix {
        let (mean, std) = initializer.meanStd
        return BF16Matrix(rows: rows.count, cols: cols.count) { local, scratch in
            SeededInit.write(name: name, seed: seed, rows: rows.lowerBound + local.lowerBound ..< rows.lowerBound + local.upperBound,
                             cols: cols, globalCols: shape.dims.last ?? 1, mean: mean, std: std, into: scratch)
        }
    }

    public func vector(_ name: String, count: Int, range: Range<Int>, initializer: Initializer) throws -> [Float] {
        let (mean, std) = initializer.meanStd
        return try SeededInit.fill(name: name, seed: seed, rows: 0..<1, cols: range, globalCols: count, mean: mean, std: std)
    }
}

extension Initializer {
    var meanStd: (Float, Float) {
        switch self {
        case let .random(std): return (0, std)
        case let .nearOne(spread): return (1, spread)
        }
    }
}
