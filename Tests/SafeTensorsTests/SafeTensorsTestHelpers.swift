import Foundation
import SafeTensors

/// A fresh directory under the system temporary directory, removed by ``remove()``.
struct TemporaryDirectory {
    let path: String

    init() throws {
        path = FileManager.default.temporaryDirectory
            .appendingPathComponent("safetensors-tests-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func file(_ name: String) -> String { path + "/" + name }

    /// Names of the entries in the directory, including hidden ones, sorted.
    func contents() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: path).sorted()
    }

    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

/// Builds raw file bytes: an 8-byte little-endian length (or `lengthOverride`), the header, then `dataBytes` zero bytes.
func craftFile(header: String, dataBytes: Int = 0, lengthOverride: UInt64? = nil) -> [UInt8] {
    let json = Array(header.utf8)
    var bytes: [UInt8] = []
    withUnsafeBytes(of: (lengthOverride ?? UInt64(json.count)).littleEndian) { bytes.append(contentsOf: $0) }
    return bytes + json + [UInt8](repeating: 0, count: dataBytes)
}

/// Parses `bytes` and returns the header error, or nil when parsing succeeded.
func headerError(_ bytes: [UInt8], file: String = "bad.safetensors") -> SafeTensorsHeaderError? {
    do {
        _ = try SafeTensorsHeader.parse(bytes: bytes, fileName: file)
        return nil
    } catch let error as SafeTensorsHeaderError {
        return error
    } catch {
        return nil
    }
}

/// Runs `body` and returns the error it threw, or nil.
func thrownError(_ body: () throws -> Void) -> (any Error)? {
    do {
        try body()
        return nil
    } catch {
        return error
    }
}

/// The name of an enum case with associated values (`"fileTooShort"` for `.fileTooShort(…)`).
func caseName(_ value: Any?) -> String? {
    guard let value else { return nil }
    return Mirror(reflecting: value).children.first?.label
}

/// Little-endian bytes of Float32 values.
func f32Bytes(_ values: [Float]) -> [UInt8] {
    values.flatMap { value in withUnsafeBytes(of: value.bitPattern.littleEndian) { Array($0) } }
}

/// Deterministic 64-bit generator (SplitMix64) so randomized tests are reproducible.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
