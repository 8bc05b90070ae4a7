/// A row-major 2-D array of `Float`: element (i, j) lives at `storage[i * cols + j]`.
///
/// Weights use PyTorch's `[out, in]` layout; activations are `[tokens, features]`.
/// A value type backed by `[Float]`; hot paths write into preallocated matrices
/// (`gemm(…, into:)`, the in-place kernels) so that a forward allocates nothing weight-sized.
public struct Matrix: Equatable, Sendable {
    public private(set) var rows: Int
    public private(set) var cols: Int
    public var storage: [Float]

    /// A `rows × cols` matrix filled with `value`.
    public init(rows: Int, cols: Int, repeating value: Float = 0) {
        precondition(rows >= 0 && cols >= 0, "Matrix shape [\(rows), \(cols)] has a negative dimension")
        self.rows = rows
        self.cols = cols
        self.storage = [Float](repeating: value, count: rows * cols)
    }

    /// A `rows × cols` matrix whose every element `body` writes; nothing is zero-filled first,
    /// and storage of `HugePages.threshold` bytes or more is advised onto huge pages before
    /// `body` first touches it. For weights, which are written once at load and streamed after.
    public init(rows: Int, cols: Int, filling body: (UnsafeMutableBufferPointer<Float>) throws -> Void) rethrows {
        precondition(rows >= 0 && cols >= 0, "Matrix shape [\(rows), \(cols)] has a negative dimension")
        self.rows = rows
        self.cols = cols
        self.storage = try [Float](unsafeUninitializedCapacity: rows * cols) { buffer, count in
            HugePages.advise(buffer)
            try body(buffer)
            count = rows * cols
        }
    }

    /// A matrix over `values` (row-major); throws when the count is not `rows × cols`.
    public init(rows: Int, cols: Int, values: [Float]) throws(ShapeError) {
        guard rows >= 0, cols >= 0, values.count == rows * cols else {
            throw ShapeError(op: "Matrix(rows:cols:values:)", "[\(rows), \(cols)]",
                             "\(values.count) values", hint: "pass exactly rows × cols values")
        }
        self.rows = rows
        self.cols = cols
        self.storage = values
    }

    /// The shape as `[rows, cols]`, for messages.
    public var shape: Shape { Shape(rows, cols) }

    public var count: Int { storage.count }

    public subscript(row: Int, col: Int) -> Float {
        get { storage[row * cols + col] }
        set { storage[row * cols + col] = newValue }
    }

    /// Resizes to `rows × cols`, reusing capacity; contents are unspecified afterwards.
    /// Used for workspaces that are reused across forwards.
    public mutating func reshapeDiscarding(rows: Int, cols: Int) {
        let n = rows * cols
        if storage.count != n {
            if storage.count > n { storage.removeLast(storage.count - n) }
            else { storage.append(contentsOf: repeatElement(0, count: n - storage.count)) }
        }
        self.rows = rows
        self.cols = cols
    }

    /// Rows `range` as a new matrix (a copy).
    public func rows(_ range: Range<Int>) -> Matrix {
        var m = Matrix(rows: range.count, cols: cols)
        m.storage.replaceSubrange(0..<m.count, with: storage[range.lowerBound * cols ..< range.upperBound * cols])
        return m
    }

    /// The transpose, as a new matrix (a copy), in cache-sized tiles.
    public func transposed() -> Matrix {
        storage.withUnsafeBufferPointer { src in
            Matrix(rows: cols, cols: rows) { transposeTiled(src, rows: rows, cols: cols, into: $0) }
        }
    }

    /// Columns `range` of every row, as a new matrix (a copy).
    public func columns(_ range: Range<Int>) -> Matrix {
        var m = Matrix(rows: rows, cols: range.count)
        for i in 0..<rows {
            for (k, j) in range.enumerated() { m.storage[i * range.count + k] = storage[i * cols + j] }
        }
        return m
    }
}

/// dst = srcᵀ for a row-major `rows × cols` source, in 64 × 64 tiles so that both sides stay in cache.
func transposeTiled<T>(_ src: UnsafeBufferPointer<T>, rows r: Int, cols c: Int, into dst: UnsafeMutableBufferPointer<T>) {
    let tile = 64
    for i0 in stride(from: 0, to: r, by: tile) {
        for j0 in stride(from: 0, to: c, by: tile) {
            for i in i0..<min(i0 + tile, r) {
                for j in j0..<min(j0 + tile, c) { dst[j * r + i] = src[i * c + j] }
            }
        }
    }
}

/// A tensor shape, printed as `[d0, d1, …]`.
public struct Shape: Equatable, Sendable, CustomStringConvertible, ExpressibleByArrayLiteral {
    public var dims: [Int]
    public init(_ dims: Int...) { self.dims = dims }
    public init(_ dims: [Int]) { self.dims = dims }
    public init(arrayLiteral elements: Int...) { self.dims = elements }
    public var description: String { "[" + dims.map(String.init).joined(separator: ", ") + "]" }
}

/// Two operands whose shapes do not fit an operation. Names the operation and both shapes.
public struct ShapeError: Error, Equatable, CustomStringConvertible {
    public var op: String
    public var lhs: String
    public var rhs: String
    public var hint: String

    public init(op: String, _ lhs: String, _ rhs: String, hint: String = "") {
        self.op = op
        self.lhs = lhs
        self.rhs = rhs
        self.hint = hint
    }

    public init(op: String, _ lhs: Shape, _ rhs: Shape, hint: String = "") {
        self.init(op: op, lhs.description, rhs.description, hint: hint)
    }

    public var description: String {
        "shape mismatch in \(op): \(lhs) vs \(rhs)" + (hint.isEmpty ? "" : " — \(hint)")
    }
}
