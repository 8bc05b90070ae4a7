/// The element type a matrix is stored in.
public enum Precision: String, Sendable, Codable, CaseIterable, CustomStringConvertible {
    case f32
    case bf16

    public var bytesPerElement: Int { self == .f32 ? 4 : 2 }
    public var description: String { rawValue }
}

/// A row-major matrix as a GEMM reads it: its shape, its precision, and a pointer to its elements.
/// `Matrix`, `BF16Matrix` and `AnyMatrix` conform, so one product serves every combination and
/// dispatches on what the storage holds (`Gemm.run(… a: GemmSource …)`).
public protocol GemmOperand {
    var rows: Int { get }
    var cols: Int { get }
    var precision: Precision { get }
    func withGemmSource<R>(_ body: (GemmSource) throws -> R) rethrows -> R
}

/// A matrix a GEMM can write its result into.
public protocol GemmResult: GemmOperand {
    mutating func withGemmDestination<R>(_ body: (GemmDestination) throws -> R) rethrows -> R
}

extension Matrix: GemmResult {
    public var precision: Precision { .f32 }
    public func withGemmSource<R>(_ body: (GemmSource) throws -> R) rethrows -> R {
        try storage.withUnsafeBufferPointer { try body(.f32($0.baseAddress ?? UnsafePointer(bitPattern: 4)!)) }
    }
    public mutating func withGemmDestination<R>(_ body: (GemmDestination) throws -> R) rethrows -> R {
        try storage.withUnsafeMutableBufferPointer { try body(.f32($0.baseAddress ?? UnsafeMutablePointer(bitPattern: 4)!)) }
    }
}

extension BF16Matrix: GemmResult {
    public var precision: Precision { .bf16 }
    public func withGemmSource<R>(_ body: (GemmSource) throws -> R) rethrows -> R {
        try storage.withUnsafeBufferPointer { try body(.bf16($0.baseAddress ?? UnsafePointer(bitPattern: 2)!)) }
    }
    public mutating func withGemmDestination<R>(_ body: (GemmDestination) throws -> R) rethrows -> R {
        try storage.withUnsafeMutableBufferPointer { try body(.bf16($0.baseAddress ?? UnsafeMutablePointer(bitPattern: 2)!)) }
    }
}

/// A matrix held in either precision: what a layer keeps as its weight (f32, or bf16 for half the
/// memory and decode bytes) and what a stage keeps as its activation. Products on it go through
/// `Gemm`, which picks the kernel from the precisions; nothing else needs to know which it holds.
public enum AnyMatrix: Equatable, Sendable, GemmResult {
    case f32(Matrix)
    case bf16(BF16Matrix)

    /// `m` stored in `precision`: as is for f32, rounded to nearest even once for bf16.
    public init(_ m: Matrix, storedAs precision: Precision) {
        switch precision {
        case .f32: self = .f32(m)
        case .bf16: self = .bf16(BF16Matrix(rounding: m))
        }
    }

    public var precision: Precision {
        switch self { case .f32: .f32; case .bf16: .bf16 }
    }
    public var rows: Int {
        switch self { case .f32(let m): m.rows; case .bf16(let m): m.rows }
    }
    public var cols: Int {
        switch self { case .f32(let m): m.cols; case .bf16(let m): m.cols }
    }
    public var shape: Shape { Shape(rows, cols) }
    public var count: Int { rows * cols }
    /// Bytes of element storage (4 per element in f32, 2 in bf16).
    public var bytes: Int { count * precision.bytesPerElement }

    /// The values as f32 (the f32 matrix itself, or an exact widened copy): for checks and export.
    public func widened() -> Matrix {
        switch self { case .f32(let m): m; case .bf16(let m): m.widened() }
    }

    /// The transpose in the same precision (a copy).
    public func transposed() -> AnyMatrix {
        switch self { case .f32(let m): .f32(m.transposed()); case .bf16(let m): .bf16(m.transposed()) }
    }

    public func withGemmSource<R>(_ body: (GemmSource) throws -> R) rethrows -> R {
        switch self {
        case .f32(let m): try m.withGemmSource(body)
        case .bf16(let m): try m.withGemmSource(body)
        }
    }

    /// Writes through the payload in place: the case is emptied while `body` runs so that the
    /// payload's storage is uniquely referenced and no copy is made.
    public mutating func withGemmDestination<R>(_ body: (GemmDestination) throws -> R) rethrows -> R {
        switch self {
        case .f32(var m):
            self = .f32(Matrix(rows: 0, cols: 0))
            defer { self = .f32(m) }
            return try m.withGemmDestination(body)
        case .bf16(var m):
            self = .bf16(BF16Matrix(rows: 0, cols: 0))
            defer { self = .bf16(m) }
            return try m.withGemmDestination(body)
        }
    }
}
