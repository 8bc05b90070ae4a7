import TensorCore

/// A weight source that reads one tensor's rows through a map: row `r` of the tensor as the
/// layer asks for it comes from row `map(r)` of the tensor as `base` stores it. How a layer
/// reads a tensor whose rows are stored in another order (a q projection with the gate packed
/// per head or concatenated); every other tensor passes through. Runs of consecutive stored
/// rows are read as one block.
public struct RowMappedSource: WeightSource {
    public let base: WeightSource
    public let name: String
    public let map: @Sendable (Int) -> Int

    public init(_ base: WeightSource, name: String, map: @escaping @Sendable (Int) -> Int) {
        self.base = base
        self.name = name
        self.map = map
    }

    /// Runs of `rows` whose stored rows are consecutive: (first row asked, stored range).
    func runs(_ rows: Range<Int>) -> [(Int, Range<Int>)] {
        var list: [(Int, Range<Int>)] = []
        var r = rows.lowerBound
        while r < rows.upperBound {
            let start = map(r)
            var n = 1
            while r + n < rows.upperBound && map(r + n) == start + n { n += 1 }
            list.append((r, start ..< start + n))
            r += n
        }
        return list
    }

    /// The elements of `rows × cols` (row-major), each run of consecutive stored rows read by `read`.
    private func gathered<E>(_ rows: Range<Int>, cols: Int, _ read: (Range<Int>) throws -> [E]) rethrows -> [E] {
        var out: [E] = []
        out.reserveCapacity(rows.count * cols)
        for (_, stored) in runs(rows) { out += try read(stored) }          // runs come in row order
        return out
    }

    public func block(_ tensor: String, shape: Shape, rows: Range<Int>, cols: Range<Int>, initializer: Initializer) throws -> Matrix {
        guard tensor == name else { return try base.block(tensor, shape: shape, rows: rows, cols: cols, initializer: initializer) }
        return try Matrix(rows: rows.count, cols: cols.count, values: try gathered(rows, cols: cols.count) {     // [rows, cols]
            try base.block(tensor, shape: shape, rows: $0, cols: cols, initializer: initializer).storage
        })
    }

    public func blockTransposed(_ tensor: String, shape: Shape, rows: Range<Int>, cols: Range<Int>, initializer: Initializer) throws -> Matrix {
        guard tensor == name else { return try base.blockTransposed(tensor, shape: shape, rows: rows, cols: cols, initializer: initializer) }
        return try block(tensor, shape: shape, rows: rows, cols: cols, initializer: initializer).transposed()
    }

    /// Each run of stored rows read from `base` in bf16 (a bf16 checkpoint's rows copied as they are).
    public func bf16Block(_ tensor: String, shape: Shape, rows: Range<Int>, cols: Range<Int>, initializer: Initializer) throws -> BF16Matrix {
        guard tensor == name else { return try base.bf16Block(tensor, shape: shape, rows: rows, cols: cols, initializer: initializer) }
        return try BF16Matrix(rows: rows.count, cols: cols.count, values: try gathered(rows, cols: cols.count) {   // [rows, cols]
            try base.bf16Block(tensor, shape: shape, rows: $0, cols: cols, initializer: initializer).storage
        })
    }

    public func vector(_ tensor: String, count: Int, range: Range<Int>, initializer: Initializer) throws -> [Float] {
        try base.vector(tensor, count: count, range: range, initializer: initializer)
    }

    public func shape(of tensor: String) -> [Int]? { base.shape(of: tensor) }
}
