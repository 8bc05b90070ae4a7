import CMPI

/// A Swift scalar with a matching MPI datatype. Sealed to the types this project sends.
public protocol MPIScalar: Sendable {
    static var mpiDatatype: MPI_Datatype { get }
}

extension Float: MPIScalar {
    public static var mpiDatatype: MPI_Datatype { mlatp_float() }
}
extension Double: MPIScalar {
    public static var mpiDatatype: MPI_Datatype { mlatp_double() }
}
extension Int64: MPIScalar {
    public static var mpiDatatype: MPI_Datatype { mlatp_int64() }
}
extension UInt8: MPIScalar {
    public static var mpiDatatype: MPI_Datatype { mlatp_byte() }
}
/// 16-bit patterns: how bf16 values travel (Open MPI 4.1 has no bf16 datatype).
extension UInt16: MPIScalar {
    public static var mpiDatatype: MPI_Datatype { mlatp_uint16() }
}

/// A reduction operator for `allReduce`.
public enum ReduceOp: Sendable {
    case sum, max, min

    var raw: MPI_Op {
        switch self {
        case .sum: return mlatp_op_sum()
        case .max: return mlatp_op_max()
        case .min: return mlatp_op_min()
        }
    }
}

/// The largest element count one MPI call takes (counts are `Int32`). Larger buffers are
/// sent as consecutive chunks of at most this many elements.
public let maxElementsPerCall = Int(Int32.max)

/// Splits `count` elements into consecutive `(offset, length)` chunks of at most `limit`.
public func chunks(count: Int, limit: Int = maxElementsPerCall) -> [(offset: Int, length: Int)] {
    precondition(limit > 0, "chunk limit must be positive")
    var result: [(Int, Int)] = []
    var offset = 0
    while offset < count {
        let length = Swift.min(limit, count - offset)
        result.append((offset, length))
        offset += length
    }
    return result
}
