import Foundation

/// This process's memory as the kernel accounts it. Weights of a memory-mapped checkpoint are
/// file-backed and shared through the page cache, so the honest per-rank figures are the
/// anonymous resident set (what the rank allocated) and PSS (shared pages divided among users).
struct ProcessMemory: Codable {
    var anonymousBytes: Int
    var pssBytes: Int
    var rssBytes: Int

    static func current() -> ProcessMemory {
        func field(_ file: String, _ key: String) -> Int {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { return 0 }
            for line in text.split(separator: "\n") where line.hasPrefix(key) {
                let digits = line.dropFirst(key.count).split(whereSeparator: { $0 == " " || $0 == "\t" }).first.flatMap { Int($0) } ?? 0
                return digits * 1024
            }
            return 0
        }
        return ProcessMemory(anonymousBytes: field("/proc/self/status", "RssAnon:"),
                             pssBytes: field("/proc/self/smaps_rollup", "Pss:"),
                             rssBytes: field("/proc/self/status", "VmRSS:"))
    }
}
