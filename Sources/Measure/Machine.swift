import Foundation
import TensorCore

/// The machine's 1-minute load average from /proc/loadavg: other work on a shared machine
/// skews timings, so reports print it. nil where it cannot be read.
public func loadAverage() -> Double? {
    guard let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) else { return nil }
    return text.split(separator: " ").first.flatMap { Double($0) }
}

/// This process's memory as the kernel accounts it. Checkpoint weights are read into each rank's
/// own buffers, so the honest per-rank figures are the anonymous resident set (what the rank
/// allocated) and PSS (shared pages, e.g. the shared-memory allreduce window, divided among users).
public struct ProcessMemory: Codable, Sendable {
    public var anonymousBytes: Int
    public var pssBytes: Int
    public var rssBytes: Int

    /// Hands freed heap pages back to the kernel (glibc's `malloc_trim`), so that the resident set
    /// reads what is still allocated rather than what the heap once grew to. Returns whether any was.
    @discardableResult
    public static func returnFreedPages() -> Bool { HeapPages.returnFreed() }

    public static func current() -> ProcessMemory {
        ProcessMemory(anonymousBytes: procField("/proc/self/status", "RssAnon:"),
                      pssBytes: procField("/proc/self/smaps_rollup", "Pss:"),
                      rssBytes: procField("/proc/self/status", "VmRSS:"))
    }
}

/// Peak resident memory, resettable (`/proc/self/clear_refs` ← 5), to see whether timed
/// forwards allocate anything large.
public enum ResidentPeak {
    /// Resets VmHWM to the current RSS. Returns false where the kernel refuses.
    @discardableResult
    public static func reset() -> Bool {
        let fd = open("/proc/self/clear_refs", O_WRONLY)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return write(fd, "5", 1) == 1
    }

    /// VmHWM: the peak resident set since the start or the last `reset()`, in bytes.
    public static func peakBytes() -> Int { procField("/proc/self/status", "VmHWM:") }
}

/// A `Key:   1234 kB` field of a /proc file, in bytes; 0 when absent.
func procField(_ file: String, _ key: String) -> Int {
    guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { return 0 }
    for line in text.split(separator: "\n") where line.hasPrefix(key) {
        let digits = line.dropFirst(key.count).split(whereSeparator: { $0 == " " || $0 == "\t" }).first.flatMap { Int($0) } ?? 0
        return digits * 1024
    }
    return 0
}
