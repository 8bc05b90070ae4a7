import Foundation

extension Communicator {
    /// Gathers one `Codable` value from every rank to every rank, in rank order: typed data
    /// between ranks instead of flat arrays indexed by hand. Sent as JSON bytes padded with
    /// JSON whitespace to the longest rank's; non-finite floats travel as "nan", "inf", "-inf".
    public func allGather<T: Codable>(value: T) throws -> [T] {
        let encoder = JSONEncoder()
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        let bytes = [UInt8](try encoder.encode(value))
        let lengths = try allGather([Int64(bytes.count)])
        let longest = Int(lengths.max() ?? 0)
        let padded = bytes + [UInt8](repeating: UInt8(ascii: " "), count: longest - bytes.count)
        let all = try allGather(padded)
        return try (0..<size).map { r in try decoder.decode(T.self, from: Data(all[r * longest ..< (r + 1) * longest])) }
    }
}
