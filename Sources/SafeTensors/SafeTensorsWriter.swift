import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Builds a safetensors file in memory and writes it atomically.
///
/// The header lists `__metadata__` first, then tensors sorted by name with
/// contiguous data offsets in the same order, and is padded with spaces so the
/// data section starts at a multiple of 8 bytes, as the Python package does.
///
/// ```swift
/// var writer = SafeTensorsWriter(metadata: ["format": "pt"])
/// try writer.add("wq.weight", floats: values, shape: [4, 8], as: .BF16)
/// try writer.write(to: "/data/model.safetensors")
/// ```
public struct SafeTensorsWriter: Sendable {
    private struct Entry: Sendable {
        var dtype: DType
        var shape: [Int]
        var bytes: [UInt8]
    }

    /// String metadata stored under `__metadata__`.
    public var metadata: [String: String]
    private var entries: [String: Entry] = [:]

    public init(metadata: [String: String] = [:]) {
        self.metadata = metadata
    }

    /// Names of the tensors added so far, sorted.
    public var tensorNames: [String] { entries.keys.sorted() }

    /// Adds a tensor from raw little-endian bytes; any dtype is accepted (e.g. F8_E4M3 weights).
    /// - Throws: ``SafeTensorsWriteError`` when the name is taken or reserved, or the byte count
    ///   does not match the shape.
    public mutating func add(_ name: String, dtype: DType, shape: [Int], bytes: [UInt8]) throws {
        guard !name.isEmpty, name != "__metadata__" else { throw SafeTensorsWriteError.invalidName(name) }
        guard entries[name] == nil else { throw SafeTensorsWriteError.duplicateTensor(name) }
        var expected = dtype.byteSize
        for dimension in shape {
            guard dimension >= 0 else { throw SafeTensorsWriteError.invalidShape(tensor: name, shape: shape) }
            let (product, overflow) = expected.multipliedReportingOverflow(by: dimension)
            guard !overflow else { throw SafeTensorsWriteError.invalidShape(tensor: name, shape: shape) }
            expected = product
        }
        guard expected == bytes.count else {
            throw SafeTensorsWriteError.byteCountMismatch(
                tensor: name, shape: shape, dtype: dtype, expectedBytes: expected, actualBytes: bytes.count)
        }
        entries[name] = Entry(dtype: dtype, shape: shape, bytes: bytes)
    }

    /// Adds a tensor from Floats, encoded as F32, F16 or BF16 (rounding to nearest even).
    public mutating func add(_ name: String, floats: [Float], shape: [Int], as dtype: DType = .F32) throws {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(floats.count * dtype.byteSize)
        switch dtype {
        case .F32:
            for value in floats { withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes.append(contentsOf: $0) } }
        case .F16:
            for value in floats {
                withUnsafeBytes(of: ScalarConversion.floatToF16(value).littleEndian) { bytes.append(contentsOf: $0) }
            }
        case .BF16:
            for value in floats {
                withUnsafeBytes(of: ScalarConversion.floatToBF16(value).littleEndian) { bytes.append(contentsOf: $0) }
            }
        default:
            throw SafeTensorsWriteError.unsupportedDType(tensor: name, dtype: dtype, allowed: [.F32, .F16, .BF16])
        }
        try add(name, dtype: dtype, shape: shape, bytes: bytes)
    }

    /// Adds a tensor from Ints, encoded as I64 or I32 (values must fit).
    public mutating func add(_ name: String, ints: [Int], shape: [Int], as dtype: DType = .I64) throws {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(ints.count * dtype.byteSize)
        switch dtype {
        case .I64:
            for value in ints { withUnsafeBytes(of: Int64(value).littleEndian) { bytes.append(contentsOf: $0) } }
        case .I32:
            for value in ints {
                guard let narrow = Int32(exactly: value) else {
                    throw SafeTensorsWriteError.integerOutOfRange(tensor: name, value: value, dtype: dtype)
                }
                withUnsafeBytes(of: narrow.littleEndian) { bytes.append(contentsOf: $0) }
            }
        default:
            throw SafeTensorsWriteError.unsupportedDType(tensor: name, dtype: dtype, allowed: [.I64, .I32])
        }
        try add(name, dtype: dtype, shape: shape, bytes: bytes)
    }

    /// The 8-byte length prefix plus the padded JSON header.
    func headerBytes() -> [UInt8] {
        var json = "{"
        var fields: [String] = []
        if !metadata.isEmpty {
            let members = metadata.keys.sorted().map { "\(Self.quote($0)):\(Self.quote(metadata[$0]!))" }
            fields.append("\"__metadata__\":{" + members.joined(separator: ",") + "}")
        }
        var offset = 0
        for name in tensorNames {
            let entry = entries[name]!
            let shape = entry.shape.map(String.init).joined(separator: ",")
            fields.append("\(Self.quote(name)):{\"dtype\":\"\(entry.dtype.rawValue)\",\"shape\":[\(shape)],"
                + "\"data_offsets\":[\(offset),\(offset + entry.bytes.count)]}")
            offset += entry.bytes.count
        }
        json += fields.joined(separator: ",") + "}"
        var header = Array(json.utf8)
        while header.count % 8 != 0 { header.append(UInt8(ascii: " ")) }
        var result: [UInt8] = []
        withUnsafeBytes(of: UInt64(header.count).littleEndian) { result.append(contentsOf: $0) }
        return result + header
    }

    /// The complete file contents, for callers that want bytes rather than a file.
    public func serialized() -> [UInt8] {
        var result = headerBytes()
        for name in tensorNames { result += entries[name]!.bytes }
        return result
    }

    /// JSON string literal for `text`, escaping quotes, backslashes and control characters.
    static func quote(_ text: String) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                result += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result + "\""
    }

    /// Writes the file atomically (`AtomicFile`): on any failure an existing file at `path` is left untouched.
    public func write(to path: String) throws {
        let file = try AtomicFile(path: path)
        try write(into: file)
        try file.commit()
    }

    /// Writes the file's bytes into `file`, which the caller commits (with others, e.g. `init`'s).
    public func write(into file: AtomicFile) throws {
        try file.write(headerBytes())
        for name in tensorNames { try file.write(entries[name]!.bytes) }
    }
}
