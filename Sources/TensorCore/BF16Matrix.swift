/// A row-major 2-D array of bf16: element (i, j) lives at `storage[i * cols + j]`, two bytes each.
///
/// The bf16 counterpart of `Matrix`, for weights held in bf16 (half the memory and half the bytes
/// a decode step streams) and for activations stored in bf16 between stages. Built either from
/// bf16 data as is (a checkpoint slice, never widened) or by rounding f32 once.
public struct BF16Matrix: Equatable, Sendable {
    public private(set) var rows: Int
    public private(set) var cols: Int
    public var storage: [BFloat16]

    /// A `rows × cols` matrix filled with `value` (zero by default).
    public init(rows: Int, cols: Int, repeating value: BFloat16 = BFloat16(bitPattern: 0)) {
        precondition(rows >= 0 && cols >= 0, "BF16Matrix shape [\(rows), \(cols)] has a negative dimension")
        self.rows = rows
        self.cols = cols
        storage = [BFloat16](repeating: value, count: rows * cols)
    }

    /// A `rows × cols` matrix whose every element `body` writes as bf16 (for slicing bf16 data as is);
    /// nothing is zero-filled first, and storage of `HugePages.threshold` bytes or more is advised onto
    /// huge pages before `body` first touches it, as `Matrix(rows:cols:filling:)` does for f32 weights.
    public init(rows: Int, cols: Int, filling body: (UnsafeMutableBufferPointer<BFloat16>) throws -> Void) rethrows {
        precondition(rows >= 0 && cols >= 0, "BF16Matrix shape [\(rows), \(cols)] has a negative dimension")
        self.rows = rows
        self.cols = cols
        storage = try [BFloat16](unsafeUninitializedCapacity: rows * cols) { buffer, count in
            HugePages.advise(UnsafeMutableRawBufferPointer(buffer))
            try body(buffer)
            count = rows * cols
        }
    }

    /// A `rows × cols` matrix from f32 values that `body` writes a block of rows at a time (the rows
    /// in its range, row-major, into a scratch of at most `blockBytes`); each block is rounded to
    /// bf16 once. For f32 sources (seeded weights, f32 or f16 checkpoints) without an f32 copy of the
    /// whole weight.
    public init(rows: Int, cols: Int, blockBytes: Int = 1 << 20,
                roundingRows body: (Range<Int>, UnsafeMutableBufferPointer<Float>) throws -> Void) rethrows {
        let blockRows = max(1, blockBytes / max(1, 4 * cols))
        let scratch = UnsafeMutableBufferPointer<Float>.allocate(capacity: min(rows, blockRows) * cols)
        defer { scratch.deallocate() }
        try self.init(rows: rows, cols: cols) { out in
            for r0 in stride(from: 0, to: rows, by: blockRows) {
                let range = r0..<min(rows, r0 + blockRows)
                let block = UnsafeMutableBufferPointer(rebasing: scratch[0..<range.count * cols])
                try body(range, block)
                BF16.round(UnsafeBufferPointer(block), into: UnsafeMutableBufferPointer(rebasing: out[r0 * cols ..< range.upperBound * cols]))
            }
        }
    }

    /// `m` rounded to bf16 once (round to nearest even).
    public init(rounding m: Matrix) {
        self.init(rows: m.rows, cols: m.cols) { out in
            m.storage.withUnsafeBufferPointer { BF16.round($0, into: out) }
        }
    }

    /// A matrix over `values` (row-major); throws when the count is not `rows × cols`.
    public init(rows: Int, cols: Int, values: [BFloat16]) throws(ShapeError) {
        guard rows >= 0, cols >= 0, values.count == rows * cols else {
            throw ShapeError(op: "BF16Matrix(rows:cols:values:)", "[\(rows), \(cols)]",
                             "\(values.count) values", hint: "pass exactly rows × cols values")
        }
        self.rows = rows
        self.cols = cols
        storage = values
    }

    public var shape: Shape { Shape(rows, cols) }
    public var count: Int { storage.count }
    /// Bytes of storage: two per element.
    public var bytes: Int { 2 * storage.count }

    public subscript(row: Int, col: Int) -> BFloat16 {
        get { storage[row * cols + col] }
        set { storage[row * cols + col] = newValue }
    }

    /// Every element widened to f32 (exact), as a new matrix: for checks, not the hot path.
    public func widened() -> Matrix {
        storage.withUnsafeBufferPointer { src in Matrix(rows: rows, cols: cols) { BF16.widen(src, into: $0) } }
    }

    /// Stores `m` rounded to bf16 into this matrix, which must have its shape (an activation
    /// written back in bf16 after an f32 stage, without allocating).
    public mutating func round(from m: Matrix) throws(ShapeError) {
        guard m.rows == rows, m.cols == cols else {
            throw ShapeError(op: "bf16 store", shape, m.shape, hint: "the bf16 matrix must have the f32 result's shape")
        }
        m.storage.withUnsafeBufferPointer { src in storage.withUnsafeMutableBufferPointer { BF16.round(src, into: $0) } }
    }

    /// Resizes to `rows × cols`, reusing capacity; contents are unspecified afterwards (workspaces).
    public mutating func reshapeDiscarding(rows: Int, cols: Int) {
        let n = rows * cols
        if storage.count > n { storage.removeLast(storage.count - n) }
        else if storage.count < n { storage.append(contentsOf: repeatElement(BFloat16(bitPattern: 0), count: n - storage.count)) }
        self.rows = rows
        self.cols = cols
    }

    /// The transpose, as a new matrix (a copy), in cache-sized tiles.
    public func transposed() -> BF16Matrix {
        storage.withUnsafeBufferPointer { src in
            BF16Matrix(rows: cols, cols: rows) { transposeTiled(src, rows: rows, cols: cols, into: $0) }
        }
    }
}
