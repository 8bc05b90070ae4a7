import Foundation

/// One tensor described by a safetensors header.
public struct TensorInfo: Sendable, Equatable, Hashable {
    /// The tensor's name (its key in the header).
    public var name: String
    /// The element type.
    public var dtype: DType
    /// The dimensions, outermost first; `[]` is a scalar.
    public var shape: [Int]
    /// The tensor's bytes, relative to the start of the data section.
    public var byteRange: Range<Int>

    public init(name: String, dtype: DType, shape: [Int], byteRange: Range<Int>) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.byteRange = byteRange
    }

    /// Number of elements (product of the shape; 1 for a scalar). Never traps for a parsed
    /// header: a shape with a zero dimension may have huge other dimensions.
    public var elementCount: Int { shape.contains(0) ? 0 : shape.reduce(1, *) }

    /// Number of bytes of data.
    public var byteCount: Int { byteRange.count }
}

/// The validated contents of a safetensors header.
///
/// Layout of a file: an unsigned 64-bit little-endian header length `N`, `N`
/// bytes of UTF-8 JSON, then the data section. Offsets in the JSON are relative
/// to the data section, which starts at byte `8 + N`.
public struct SafeTensorsHeader: Sendable, Equatable {
    /// Largest header accepted, as in the reference implementation (100 MiB).
    public static let maxHeaderLength = 100 * 1024 * 1024

    /// Every tensor, keyed by name.
    public var tensors: [String: TensorInfo]
    /// The `__metadata__` object (empty when absent).
    public var metadata: [String: String]
    /// Absolute file offset of the data section (`8 + header length`).
    public var dataOffset: Int

    public init(tensors: [String: TensorInfo], metadata: [String: String], dataOffset: Int) {
        self.tensors = tensors
        self.metadata = metadata
        self.dataOffset = dataOffset
    }

    /// Parses and validates a header. This is a pure function: it performs no
    /// I/O and never traps on arbitrary input, so it is safe to fuzz.
    ///
    /// - Parameters:
    ///   - bytes: the start of the file; it must hold at least the length prefix and the JSON header
    ///     (the whole file is fine).
    ///   - fileSize: the size of the whole file, used to bound the data section; defaults to `bytes.count`.
    ///   - fileName: the name used in error messages.
    /// - Throws: ``SafeTensorsHeaderError``, one case per violated rule.
    public static func parse(bytes: UnsafeRawBufferPointer, fileSize: Int? = nil, fileName: String) throws -> SafeTensorsHeader {
        let fileSize = fileSize ?? bytes.count
        guard fileSize >= 8, bytes.count >= 8 else {
            throw SafeTensorsHeaderError.fileTooShort(file: fileName, fileSize: min(fileSize, bytes.count))
        }
        var length: UInt64 = 0
        for offset in (0..<8).reversed() { length = length << 8 | UInt64(bytes[offset]) }
        guard length <= UInt64(maxHeaderLength) else {
            throw SafeTensorsHeaderError.headerLengthExceedsLimit(file: fileName, headerLength: length, limit: maxHeaderLength)
        }
        let headerLength = Int(length)
        guard 8 + headerLength <= fileSize else {
            throw SafeTensorsHeaderError.headerLengthExceedsFile(file: fileName, headerLength: length, fileSize: fileSize)
        }
        guard 8 + headerLength <= bytes.count else {
            throw SafeTensorsHeaderError.headerLengthExceedsFile(file: fileName, headerLength: length, fileSize: bytes.count)
        }
        let json: JSONValue
        do {
            json = try JSONParser.parse(UnsafeRawBufferPointer(rebasing: bytes[8..<(8 + headerLength)]))
        } catch {
            throw SafeTensorsHeaderError.malformedJSON(file: fileName, reason: error.reason)
        }
        guard case let .object(members) = json else {
            throw SafeTensorsHeaderError.headerNotAnObject(file: fileName, found: json.kindName)
        }
        let dataSize = fileSize - 8 - headerLength
        var tensors: [String: TensorInfo] = [:]
        var metadata: [String: String] = [:]
        for (key, value) in members {
            if key == "__metadata__" {
                metadata = try parseMetadata(value, fileName: fileName)
            } else {
                tensors[key] = try parseEntry(name: key, value, dataSize: dataSize, fileName: fileName)
            }
        }
        try checkOverlaps(tensors.values, fileName: fileName)
        try checkCoverage(tensors.values, dataSize: dataSize, fileName: fileName)
        return SafeTensorsHeader(tensors: tensors, metadata: metadata, dataOffset: 8 + headerLength)
    }

    /// Convenience overload of ``parse(bytes:fileSize:fileName:)`` for `Data`.
    public static func parse(data: Data, fileSize: Int? = nil, fileName: String) throws -> SafeTensorsHeader {
        try data.withUnsafeBytes { try parse(bytes: $0, fileSize: fileSize, fileName: fileName) }
    }

    /// Convenience overload of ``parse(bytes:fileSize:fileName:)`` for a byte array.
    public static func parse(bytes: [UInt8], fileSize: Int? = nil, fileName: String) throws -> SafeTensorsHeader {
        try bytes.withUnsafeBytes { try parse(bytes: $0, fileSize: fileSize, fileName: fileName) }
    }

    private static func parseMetadata(_ value: JSONValue, fileName: String) throws -> [String: String] {
        switch value {
        case .null:
            return [:]
        case let .object(members):
            var result: [String: String] = [:]
            for (key, entry) in members {
                guard case let .string(text) = entry else {
                    throw SafeTensorsHeaderError.malformedMetadata(
                        file: fileName, reason: "value for key '\(key)' is \(entry.kindName), not a string")
                }
                result[key] = text
            }
            return result
        default:
            throw SafeTensorsHeaderError.malformedMetadata(file: fileName, reason: "is \(value.kindName), not an object")
        }
    }

    private static func parseEntry(name: String, _ value: JSONValue, dataSize: Int, fileName: String) throws -> TensorInfo {
        func malformed(_ reason: String) -> SafeTensorsHeaderError {
            .malformedEntry(file: fileName, tensor: name, reason: reason)
        }
        guard case let .object(members) = value else { throw malformed("the entry is \(value.kindName), not an object") }
        var fields: [String: JSONValue] = [:]
        for (key, field) in members { fields[key] = field }

        guard let dtypeValue = fields["dtype"] else { throw malformed("the \"dtype\" field is missing") }
        guard case let .string(dtypeName) = dtypeValue else {
            throw malformed("\"dtype\" is \(dtypeValue.kindName), not a string")
        }
        guard let shapeValue = fields["shape"] else { throw malformed("the \"shape\" field is missing") }
        guard case let .array(shapeItems) = shapeValue else {
            throw malformed("\"shape\" is \(shapeValue.kindName), not an array")
        }
        var shape: [Int] = []
        for (axis, item) in shapeItems.enumerated() {
            guard let dimension = item.nonNegativeInt else {
                throw malformed("shape[\(axis)] is \(describe(item)), not a non-negative integer")
            }
            shape.append(dimension)
        }
        guard let offsetsValue = fields["data_offsets"] else { throw malformed("the \"data_offsets\" field is missing") }
        guard case let .array(offsetItems) = offsetsValue, offsetItems.count == 2 else {
            throw malformed("\"data_offsets\" is \(describe(offsetsValue)), not a two-element array")
        }
        guard let begin = offsetItems[0].nonNegativeInt, let end = offsetItems[1].nonNegativeInt else {
            throw malformed("\"data_offsets\" \(describe(offsetsValue)) must hold two non-negative integers")
        }
        guard begin <= end else { throw malformed("\"data_offsets\" begin \(begin) is greater than end \(end)") }

        guard let dtype = DType(rawValue: dtypeName) else {
            throw SafeTensorsHeaderError.unknownDType(file: fileName, tensor: name, dtype: dtypeName)
        }
        guard end <= dataSize else {
            throw SafeTensorsHeaderError.offsetsOutOfBounds(
                file: fileName, tensor: name, begin: begin, end: end, dataSectionSize: dataSize)
        }
        var bytes = dtype.byteSize
        if !shape.contains(0) {
            for dimension in shape {
                let (product, overflow) = bytes.multipliedReportingOverflow(by: dimension)
                guard !overflow else {
                    throw SafeTensorsHeaderError.shapeOverflow(file: fileName, tensor: name, shape: shape, dtype: dtype)
                }
                bytes = product
            }
        } else {
            bytes = 0
        }
        guard bytes == end - begin else {
            throw SafeTensorsHeaderError.byteCountMismatch(
                file: fileName, tensor: name, shape: shape, dtype: dtype, expectedBytes: bytes, actualBytes: end - begin)
        }
        return TensorInfo(name: name, dtype: dtype, shape: shape, byteRange: begin..<end)
    }

    /// Renders a JSON value briefly for an error message, never echoing huge input.
    private static func describe(_ value: JSONValue) -> String {
        switch value {
        case let .number(text): return text.count <= 32 ? text : String(text.prefix(32)) + "…"
        case let .bool(flag): return flag ? "true" : "false"
        case let .array(items) where items.count <= 4: return "[" + items.map(describe).joined(separator: ", ") + "]"
        default: return value.kindName
        }
    }

    /// Rejects a data section the tensors do not cover exactly, as the safetensors library does:
    /// bytes between two tensors (`InvalidOffset`) or after the last one (`MetadataIncompleteBuffer`).
    /// Called after `checkOverlaps`, so the non-empty ranges are disjoint.
    private static func checkCoverage(_ tensors: some Collection<TensorInfo>, dataSize: Int, fileName: String) throws {
        let sorted = tensors.filter { !$0.byteRange.isEmpty }.sorted { $0.byteRange.lowerBound < $1.byteRange.lowerBound }
        var end = 0, previous: String?
        for tensor in sorted {
            guard tensor.byteRange.lowerBound == end else {
                throw SafeTensorsHeaderError.uncoveredBytes(file: fileName, range: end..<tensor.byteRange.lowerBound,
                                                            after: previous, before: tensor.name, dataSectionSize: dataSize)
            }
            end = tensor.byteRange.upperBound
            previous = tensor.name
        }
        guard end == dataSize else {
            throw SafeTensorsHeaderError.uncoveredBytes(file: fileName, range: end..<dataSize, after: previous, before: nil,
                                                        dataSectionSize: dataSize)
        }
    }

    /// Rejects any two tensors whose non-empty byte ranges intersect.
    private static func checkOverlaps(_ tensors: some Collection<TensorInfo>, fileName: String) throws {
        let sorted = tensors.filter { !$0.byteRange.isEmpty }.sorted {
            ($0.byteRange.lowerBound, $0.byteRange.upperBound, $0.name) < ($1.byteRange.lowerBound, $1.byteRange.upperBound, $1.name)
        }
        guard var furthest = sorted.first else { return }
        for tensor in sorted.dropFirst() {
            if tensor.byteRange.lowerBound < furthest.byteRange.upperBound {
                throw SafeTensorsHeaderError.overlappingTensors(
                    file: fileName, first: furthest.name, firstRange: furthest.byteRange,
                    second: tensor.name, secondRange: tensor.byteRange)
            }
            if tensor.byteRange.upperBound > furthest.byteRange.upperBound { furthest = tensor }
        }
    }
}
