/// A vector held in either precision: a layer's bias or a norm's weight, kept in the precision of
/// the layer's weights (a bf16 engine's bias is bf16, like its weight matrix). Kernels read it as
/// f32 values (`withFloats`: the f32 array itself, or the bf16 values widened exactly into a
/// temporary buffer, vector-sized).
public enum AnyVector: Equatable, Sendable {
    case f32([Float])
    case bf16([BFloat16])

    /// `values` stored in `precision`: as they are for f32, rounded to nearest even once for bf16.
    public init(_ values: [Float], storedAs precision: Precision) {
        switch precision {
        case .f32: self = .f32(values)
        case .bf16: self = .bf16(BF16.round(values))
        }
    }

    public var precision: Precision {
        switch self { case .f32: .f32; case .bf16: .bf16 }
    }
    public var count: Int {
        switch self { case .f32(let v): v.count; case .bf16(let v): v.count }
    }
    /// Bytes of element storage (4 per element in f32, 2 in bf16).
    public var bytes: Int { count * precision.bytesPerElement }

    /// The values as f32 (exact): for export and checks.
    public func widened() -> [Float] {
        switch self { case .f32(let v): v; case .bf16(let v): BF16.widen(v) }
    }

    /// Runs `body` on the values as f32.
    public func withFloats<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        switch self {
        case .f32(let v):
            return try v.withUnsafeBufferPointer(body)
        case .bf16(let v):
            return try withUnsafeTemporaryAllocation(of: Float.self, capacity: v.count) { scratch in
                v.withUnsafeBufferPointer { BF16.widen($0, into: scratch) }
                return try body(UnsafeBufferPointer(scratch))
            }
        }
    }
}

extension Matrix {
    /// Adds `bias` (one value per column, read as f32) to every row.
    public mutating func addRowBias(_ bias: AnyVector) throws(ShapeError) {
        switch bias {
        case .f32(let values): try addRowBias(values)
        case .bf16: try addRowBias(bias.widened())
        }
    }
}
