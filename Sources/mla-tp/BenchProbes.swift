import Foundation
import SwiftMPI
import TensorCore

/// Median, min and max of repeated timings (seconds), with the samples themselves.
struct BenchStats: Codable, Equatable {
    var median: Double
    var min: Double
    var max: Double
    var samples: [Double]

    init(_ samples: [Double]) {
        let sorted = samples.sorted()
        self.samples = samples
        min = sorted.first ?? 0
        max = sorted.last ?? 0
        if sorted.isEmpty {
            median = 0
        } else if sorted.count % 2 == 1 {
            median = sorted[sorted.count / 2]
        } else {
            median = (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
        }
    }
}

/// Helpers of the reference measurements a bench holds the forward against.
enum BenchProbe {
    /// Reads one byte every `stride` bytes of `p` into a global: after a timed copy into it (one
    /// per page), so that the optimizer cannot drop the copy; or every cache line, to evict the caches.
    static func keep(_ p: UnsafeMutableRawPointer, bytes: Int, stride step: Int = 4096) {
        let d = p.assumingMemoryBound(to: UInt8.self)
        var sum = 0
        for i in stride(from: 0, to: bytes, by: step) { sum &+= Int(d[i]) }
        benchSink &+= sum
    }
}

/// The reference measurements' buffers, each allocated and filled (its pages faulted in) at its
/// first use: after a phase's memory reading, so they never count in it. Freed with the phase.
final class ProbeBuffers {
    private var blocks: [String: (pointer: UnsafeMutableRawPointer, count: Int)] = [:]

    /// `count` bytes named `name`.
    func bytes(_ name: String, count: Int) -> (pointer: UnsafeMutableRawPointer, count: Int) {
        if let b = blocks[name] { return b }
        let p = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1), alignment: 64)
        memset(p, 1, count)
        blocks[name] = (p, count)
        return (p, count)
    }

    /// `count` floats named `name`, filled with 1; `fresh` on the first use.
    func floats(_ name: String, count: Int) -> (UnsafeMutableBufferPointer<Float>, fresh: Bool) {
        let fresh = blocks[name] == nil
        let b = bytes(name, count: 4 * count)
        let f = b.pointer.bindMemory(to: Float.self, capacity: count)
        if fresh { f.update(repeating: 1, count: count) }
        return (UnsafeMutableBufferPointer(start: f, count: count), fresh)
    }

    deinit { for b in blocks.values { b.pointer.deallocate() } }
}

/// Where probes leave a value derived from their results, so that the optimizer keeps the work.
nonisolated(unsafe) var benchSink = 0

/// Peak and current resident memory from `/proc/self/status`, with the peak reset in between
/// (`/proc/self/clear_refs` ← 5), to see whether the timed forwards allocate anything large.
enum ResidentPeak {
    /// Resets VmHWM to the current RSS. Returns false where the kernel refuses.
    @discardableResult
    static func reset() -> Bool {
        let fd = open("/proc/self/clear_refs", O_WRONLY)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return write(fd, "5", 1) == 1
    }

    /// VmHWM: the peak resident set since the start or the last `reset()`, in bytes.
    static func peakBytes() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            return (line.dropFirst(6).split(whereSeparator: { $0 == " " || $0 == "\t" }).first.flatMap { Int($0) } ?? 0) * 1024
        }
        return 0
    }
}

/// CPU seconds the calling thread has used.
func threadCPUTime() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

/// The 1-minute load average when the bench started (other work on the machine skews timings).
func loadAverage() -> Double {
    guard let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) else { return -1 }
    return text.split(separator: " ").first.flatMap { Double($0) } ?? -1
}

/// Gathers one Codable value per rank to every rank, as JSON bytes padded to the longest.
func gatherCodable<T: Codable>(_ value: T, world: Communicator) throws -> [T] {
    let bytes = [UInt8](try JSONEncoder().encode(value))
    let lengths = try world.allGather([Int64(bytes.count)])
    let longest = Int(lengths.max() ?? 0)
    let padded = bytes + [UInt8](repeating: UInt8(ascii: " "), count: longest - bytes.count)  // JSON whitespace
    let all = try world.allGather(padded)
    return try (0..<world.size).map { r in
        try JSONDecoder().decode(T.self, from: Data(all[r * longest ..< (r + 1) * longest]))
    }
}
