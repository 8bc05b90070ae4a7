import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A failure building or writing a file with ``SafeTensorsWriter`` or ``AtomicFile``.
///
/// Whatever the failure, an existing file at the destination is left untouched
/// and no temporary file is left behind.
public enum SafeTensorsWriteError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The byte count does not equal product(shape) × dtype size.
    case byteCountMismatch(tensor: String, shape: [Int], dtype: DType, expectedBytes: Int, actualBytes: Int)
    /// The shape has a negative dimension or its byte count overflows.
    case invalidShape(tensor: String, shape: [Int])
    /// A tensor of the same name was already added.
    case duplicateTensor(String)
    /// The tensor name is empty or reserved (`__metadata__`).
    case invalidName(String)
    /// The requested conversion does not produce this dtype.
    case unsupportedDType(tensor: String, dtype: DType, allowed: [DType])
    /// A value cannot be represented in the target integer dtype.
    case integerOutOfRange(tensor: String, value: Int, dtype: DType)
    /// A system call failed while writing.
    case ioFailure(path: String, operation: String, errno: Int32)
    /// SIGINT or SIGTERM (or mpirun's SIGCONT warning) arrived before the file was linked in.
    case interrupted(path: String, signal: Int32)

    public var description: String {
        switch self {
        case let .byteCountMismatch(tensor, shape, dtype, expected, actual):
            return "tensor '\(tensor)' has shape \(shape) of \(dtype.rawValue), which needs \(expected) bytes, "
                + "but \(actual) bytes were given — pass data matching the shape"
        case let .invalidShape(tensor, shape):
            return "tensor '\(tensor)' has invalid shape \(shape) — dimensions must be non-negative and their "
                + "byte count must fit in a 64-bit integer"
        case let .duplicateTensor(name):
            return "tensor '\(name)' was added twice — give every tensor a unique name"
        case let .invalidName(name):
            return "tensor name '\(name)' is not allowed — use a non-empty name other than __metadata__"
        case let .unsupportedDType(tensor, dtype, allowed):
            return "tensor '\(tensor)' cannot be encoded as \(dtype.rawValue) from this element type — use one of "
                + allowed.map(\.rawValue).joined(separator: ", ")
        case let .integerOutOfRange(tensor, value, dtype):
            return "tensor '\(tensor)' holds \(value), which does not fit in \(dtype.rawValue) — use I64"
        case let .ioFailure(path, operation, code):
            return "\(path): \(operation) failed: \(describeErrno(code)) — \(Self.remedy(for: code)); "
                + "any existing file there was left unchanged"
        case let .interrupted(path, signal):
            let why = signal == SIGCONT ? "mpirun began stopping the job (its SIGCONT, before SIGTERM)"
                : "\(String(cString: strsignal(signal))) (signal \(signal)) asked the job to stop"
            return "\(path) was not written: \(why) — any existing file there was left unchanged; rerun to write it"
        }
    }

    /// What to do about a failed write, by its errno.
    static func remedy(for code: Int32) -> String {
        switch code {
        case ENOSPC, EDQUOT: return "free space on that filesystem or write somewhere else"
        case EACCES, EPERM: return "check that the directory is writable by this user"
        case EROFS: return "the filesystem is read-only; write somewhere else"
        case ENOENT: return "check that the directory exists"
        case ENOTDIR: return "a part of the path is a file, not a directory; fix the path"
        case EISDIR: return "the path is a directory; pass a file name"
        case ENAMETOOLONG: return "use a shorter file name"
        default: return "check the path and its filesystem"
        }
    }
}
