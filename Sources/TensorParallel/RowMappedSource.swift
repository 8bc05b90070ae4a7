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

    /// Each run of stored rows as stored in fp8, or quantized on the stored tensor's tile grid
    /// where `base` holds it otherwise, its scale rows appended after the previous run's, every row
    /// pointing at its own.
    public func fp8Block(_ tensor: String, shape: Shape, rows: Range<Int>, cols: Range<Int>, initializer: Initializer) throws -> FP8BlockMatrix? {
        guard tensor == name else { return try base.fp8Block(tensor, shape: shape, rows: rows, cols: cols, initializer: initializer) }
        var values: [UInt8] = [], scales: [Float] = [], rowScale: [Int32] = []
        var first: FP8BlockMatrix?
        for (_, stored) in runs(rows) {
            let part = try base.fp8Block(tensor, shape: shape, rows: stored, cols: cols, initializer: initializer)
                ?? FP8BlockStorage.quantize(tensor, from: base, shape: shape, rows: stored, cols: cols, initializer: initializer)
            let offset = Int32(scales.count / max(1, part.scaleCols))                 // scale rows so far
            first = first ?? part
            values += part.values
            scales += part.scales
            rowScale += (0..<part.rows).map { offset + Int32(part.rowScale?[$0] ?? Int32((part.rowOffset + $0) / part.blockSize)) }
        }
        guard let first else { return try base.fp8Block(tensor, shape: shape, rows: rows, cols: cols, initializer: initializer) }
        return FP8BlockMatrix(rows: rows.count, cols: cols.count, blockSize: first.blockSize, values: values, scales: scales,
                              scaleCols: first.scaleCols, rowOffset: 0, columnOffset: first.columnOffset, rowScale: rowScale)
    }

    public func storedInFP8(_ tensor: String) -> Bool? { base.storedInFP8(tensor) }

    public func vector(_ tensor: String, count: Int, range: Range<Int>, initializer: Initializer) throws -> [Float] {
        try base.vector(tensor, count: count, range: range, initializer: initializer)
    }

    public func shape(of tensor: String) -> [Int]? { base.shape(of: tensor) }
}
