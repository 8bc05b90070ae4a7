/// A safetensors header that cannot be trusted. Every case names the file and,
/// where one is involved, the tensor, together with the offending numbers.
public enum SafeTensorsHeaderError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The file is shorter than the 8-byte header-length prefix.
    case fileTooShort(file: String, fileSize: Int)
    /// The header length prefix points past the end of the file.
    case headerLengthExceedsFile(file: String, headerLength: UInt64, fileSize: Int)
    /// The header length prefix is above ``SafeTensorsHeader/maxHeaderLength``.
    case headerLengthExceedsLimit(file: String, headerLength: UInt64, limit: Int)
    /// The header bytes are not well-formed UTF-8 JSON.
    case malformedJSON(file: String, reason: String)
    /// The header is JSON but its top level is not an object.
    case headerNotAnObject(file: String, found: String)
    /// A tensor entry is not `{"dtype": string, "shape": [ints], "data_offsets": [begin, end]}`.
    case malformedEntry(file: String, tensor: String, reason: String)
    /// `__metadata__` is not an object mapping strings to strings.
    case malformedMetadata(file: String, reason: String)
    /// A tensor's dtype string is not one this module knows.
    case unknownDType(file: String, tensor: String, dtype: String)
    /// A tensor's `data_offsets` extend past the end of the data section.
    case offsetsOutOfBounds(file: String, tensor: String, begin: Int, end: Int, dataSectionSize: Int)
    /// Two tensors claim overlapping byte ranges.
    case overlappingTensors(file: String, first: String, firstRange: Range<Int>, second: String, secondRange: Range<Int>)
    /// The byte count implied by shape and dtype differs from `end - begin`.
    case byteCountMismatch(file: String, tensor: String, shape: [Int], dtype: DType, expectedBytes: Int, actualBytes: Int)
    /// Bytes of the data section belong to no tensor: a gap between two tensors, or bytes after
    /// the last one (`before` nil). The safetensors library rejects both.
    case uncoveredBytes(file: String, range: Range<Int>, after: String?, before: String?, dataSectionSize: Int)
    /// The product of the shape (times the dtype size) does not fit in an `Int`.
    case shapeOverflow(file: String, tensor: String, shape: [Int], dtype: DType)

    public var description: String {
        switch self {
        case let .fileTooShort(file, size):
            return "\(file): the file is \(size) bytes, shorter than the 8-byte safetensors header-length prefix — "
                + "the file is truncated or not a safetensors file; re-download or re-export it"
        case let .headerLengthExceedsFile(file, length, size):
            return "\(file): header length \(length) exceeds the file size \(size) (8 + header length must be ≤ file size) — "
                + "the file is truncated or not a safetensors file; re-download or re-export it"
        case let .headerLengthExceedsLimit(file, length, limit):
            return "\(file): header length \(length) exceeds the limit of \(limit) bytes — "
                + "the file is corrupt or not a safetensors file; re-export it with the safetensors package"
        case let .malformedJSON(file, reason):
            return "\(file): the header is not valid JSON (\(reason)) — the file is corrupt; re-download or re-export it"
        case let .headerNotAnObject(file, found):
            return "\(file): the header must be a JSON object mapping tensor names to entries, but it is \(found) — "
                + "the file is corrupt or not a safetensors file; re-export it"
        case let .malformedEntry(file, tensor, reason):
            return "\(file): tensor '\(tensor)': \(reason); each entry must be "
                + "{\"dtype\": string, \"shape\": [non-negative integers], \"data_offsets\": [begin, end]} with 0 ≤ begin ≤ end — "
                + "re-export the file with the safetensors package"
        case let .malformedMetadata(file, reason):
            return "\(file): __metadata__ \(reason); it must be an object mapping strings to strings — "
                + "fix the metadata passed to the exporter and re-export the file"
        case let .unknownDType(file, tensor, dtype):
            return "\(file): tensor '\(tensor)' has unknown dtype '\(dtype)'; supported dtypes are \(DType.supportedList) — "
                + "convert the tensor to a supported dtype before exporting"
        case let .offsetsOutOfBounds(file, tensor, begin, end, size):
            return "\(file): tensor '\(tensor)' has data_offsets [\(begin), \(end)] but the data section is only \(size) bytes — "
                + "the file is truncated; re-download or re-export it"
        case let .overlappingTensors(file, first, firstRange, second, secondRange):
            return "\(file): tensors '\(first)' [\(firstRange.lowerBound), \(firstRange.upperBound)) and "
                + "'\(second)' [\(secondRange.lowerBound), \(secondRange.upperBound)) overlap — "
                + "the header is corrupt; re-export the file with the safetensors package"
        case let .byteCountMismatch(file, tensor, shape, dtype, expected, actual):
            return "\(file): tensor '\(tensor)' has shape \(shape) of \(dtype.rawValue), which needs \(expected) bytes, "
                + "but its data_offsets span \(actual) bytes — the header is corrupt; re-export the file"
        case let .uncoveredBytes(file, range, after, before, size):
            let place = before.map { b in after.map { "between tensors '\($0)' and '\(b)'" } ?? "before tensor '\(b)'" }
                ?? after.map { "after the last tensor '\($0)'" } ?? "with no tensor"
            return "\(file): data bytes [\(range.lowerBound), \(range.upperBound)) of the \(size)-byte data section belong to no tensor "
                + "(\(place)) — the file is truncated, padded or corrupt (the safetensors library rejects it too); re-export it"
        case let .shapeOverflow(file, tensor, shape, dtype):
            return "\(file): tensor '\(tensor)' has shape \(shape) of \(dtype.rawValue), whose byte count overflows a 64-bit integer — "
                + "the header is corrupt; re-export the file"
        }
    }
}
