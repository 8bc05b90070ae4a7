import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Describes an `errno` value in words.
func describeErrno(_ code: Int32) -> String {
    String(cString: strerror(code)) + " (errno \(code))"
}

/// Formats a half-open range as `[a, b)` for messages.
func describeRange(_ range: Range<Int>) -> String {
    "[\(range.lowerBound), \(range.upperBound))"
}

/// A failure opening a safetensors file or reading a tensor from it.
public enum SafeTensorsReadError: Error, CustomStringConvertible, Equatable, Sendable {
    /// `open`, `fstat` or a read failed.
    case cannotOpen(file: String, operation: String, errno: Int32)
    /// The file ended before bytes its header promised: it was truncated or rewritten after it
    /// was opened (`expected` bytes were asked for at `offset`; the file now has `fileSize`).
    case changedWhileReading(file: String, tensor: String, offset: Int, expected: Int, fileSize: Int)
    /// No tensor of that name is in the file.
    case tensorNotFound(file: String, tensor: String)
    /// The tensor's rank is not what the read needs.
    case wrongRank(file: String, tensor: String, shape: [Int], expected: String)
    /// The requested rows or columns are outside the tensor.
    case blockOutOfBounds(file: String, tensor: String, shape: [Int], rows: Range<Int>, columns: Range<Int>)
    /// The tensor's dtype cannot be converted the requested way.
    case unsupportedDType(file: String, tensor: String, dtype: DType, operation: String)
    /// The caller's buffer does not have exactly the number of elements of the block.
    case destinationSizeMismatch(tensor: String, needed: Int, provided: Int)
    /// An FP8 scale tensor does not have the shape its weight and block size imply.
    case scaleShapeMismatch(file: String, weight: String, weightShape: [Int], scale: String, scaleShape: [Int],
                            expectedShape: [Int], blockSize: Int)
    /// A block size of zero or less was passed to the FP8 dequantizer.
    case invalidBlockSize(Int)
    /// An FP8 scale that is NaN, infinite, zero or negative (a scale multiplies every value of its tile).
    case badScale(file: String, scale: String, weight: String, tile: [Int], value: Float)
    /// An I64 value does not fit in `Int` (only possible on 32-bit platforms).
    case integerOverflow(file: String, tensor: String)

    public var description: String {
        switch self {
        case let .cannotOpen(file, operation, code):
            return "\(file): \(operation) failed: \(describeErrno(code)) — check that the path exists, "
                + "is a regular file and is readable"
        case let .changedWhileReading(file, tensor, offset, expected, size):
            return "\(file) changed while it was being read: tensor '\(tensor)' needs bytes \(offset)..<\(offset + expected) "
                + "but the file now ends at byte \(size) — another program truncated or rewrote it; rerun once it has finished writing"
        case let .tensorNotFound(file, tensor):
            return "\(file): no tensor named '\(tensor)' — check the name against the file's tensor list "
                + "(for sharded checkpoints, open the directory with CheckpointIndex)"
        case let .wrongRank(file, tensor, shape, expected):
            return "\(file): tensor '\(tensor)' has shape \(shape), but this read needs \(expected) — "
                + "reshape or select the tensor differently"
        case let .blockOutOfBounds(file, tensor, shape, rows, columns):
            return "\(file): rows \(describeRange(rows)) × columns \(describeRange(columns)) are outside tensor "
                + "'\(tensor)' of shape \(shape) — check the shard arithmetic (world size must divide the dimension)"
        case let .unsupportedDType(file, tensor, dtype, operation):
            return "\(file): tensor '\(tensor)' has dtype \(dtype.rawValue), which \(operation) does not support — "
                + "convert the checkpoint to a supported dtype first"
        case let .destinationSizeMismatch(tensor, needed, provided):
            return "reading tensor '\(tensor)' needs a buffer of exactly \(needed) elements but \(provided) were provided — "
                + "size the buffer as rows × columns of the requested block"
        case let .scaleShapeMismatch(file, weight, weightShape, scale, scaleShape, expected, blockSize):
            return "\(file): scale '\(scale)' has shape \(scaleShape), but weight '\(weight)' of shape \(weightShape) "
                + "with block size \(blockSize) needs \(expected) — pass the block size the checkpoint was quantized with"
        case let .badScale(file, scale, weight, tile, value):
            return "\(file): scale '\(scale)' of weight '\(weight)' is \(value) at tile \(tile), but every FP8 block scale must be "
                + "finite and greater than 0 — the checkpoint is damaged or was not quantized block-wise; re-export it"
        case let .invalidBlockSize(size):
            return "FP8 block size \(size) is invalid — pass a positive block size (DeepSeek-V3 uses 128)"
        case let .integerOverflow(file, tensor):
            return "\(file): tensor '\(tensor)' holds a value that does not fit in Int on this platform — use a 64-bit build"
        }
    }
}
