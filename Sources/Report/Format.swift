import Foundation

/// Formatting shared by every text report.
public enum Format {
    /// A byte count for tables: B, KB, MB, GB (decimal, as the plan's "470 MB").
    public static func bytes(_ n: Int) -> String {
        let v = Double(n)
        if v >= 1e9 { return String(format: "%.2f GB", v / 1e9) }
        if v >= 1e6 { return String(format: "%.1f MB", v / 1e6) }
        if v >= 1e3 { return String(format: "%.1f KB", v / 1e3) }
        return "\(n) B"
    }

    /// Seconds as s, ms or µs.
    public static func seconds(_ s: Double) -> String {
        if s >= 1 { return String(format: "%.3f s", s) }
        if s >= 1e-3 { return String(format: "%.3f ms", s * 1e3) }
        return String(format: "%.2f µs", s * 1e6)
    }

    /// A rate with a T/G/M prefix and `unit`.
    public static func rate(_ r: Double, _ unit: String) -> String {
        if r >= 1e12 { return String(format: "%.3g T%@", r / 1e12, unit) }
        if r >= 1e9 { return String(format: "%.3g G%@", r / 1e9, unit) }
        return String(format: "%.3g M%@", r / 1e6, unit)
    }

    public static func gflop(_ f: Int) -> String { String(format: "%.3f", Double(f) / 1e9) }
    public static func mflop(_ f: Double) -> String { String(format: "%.2f", f / 1e6) }
    public static func percent(_ x: Double) -> String { String(format: "%+.0f%%", 100 * x) }

    /// A text bar of `width` cells for value / max.
    public static func bar(_ value: Double, of max: Double, width: Int) -> String {
        let n = max > 0 ? Int((value / max * Double(width)).rounded()) : 0
        return String(repeating: "█", count: n) + String(repeating: "·", count: width - n)
    }

    /// A left-aligned text table.
    public static func table(_ header: [String], _ rows: [[String]]) -> String {
        let all = [header] + rows
        let widths = header.indices.map { i in all.map { $0[i].count }.max() ?? 0 }
        func line(_ r: [String]) -> String {
            r.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined(separator: "  ")
                .trimmingCharacters(in: .whitespaces)
        }
        return ([line(header), widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")] + rows.map(line))
            .joined(separator: "\n")
    }

    /// One JSON document, keys sorted, non-finite numbers as "nan", "inf", "-inf".
    public static func json<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }
}
