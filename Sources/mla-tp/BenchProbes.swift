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

/// The reference measurements a bench holds the forward against, each taken in the same run on
/// every rank at once (after a barrier), so that they see the same machine the forward saw:
/// both cores busy, the memory bus shared.
enum BenchProbe {
    /// `cblas_sgemm` rate (FLOP/s) of `x [m, k] · Wᵀ` with `W [n, k]`, the median of `repeats`.
    /// `weight` and `x` are the layer's own operands, so nothing weight-sized is allocated.
    static func sgemm(x: UnsafePointer<Float>, weight: UnsafePointer<Float>, m: Int, n: Int, k: Int,
                      repeats: Int, world: Communicator) throws -> (flopsPerSecond: Double, seconds: BenchStats) {
        var out = [Float](repeating: 0, count: m * n)
        var times: [Double] = []
        try out.withUnsafeMutableBufferPointer { c in
            Gemm.run(transB: true, m: m, n: n, k: k, a: x, lda: k, b: weight, ldb: k, c: c.baseAddress!, ldc: n)  // warm
            for _ in 0..<repeats {
                try world.barrier()
                let t0 = Environment.wallTime()
                Gemm.run(transB: true, m: m, n: n, k: k, a: x, lda: k, b: weight, ldb: k, c: c.baseAddress!, ldc: n)
                times.append(Environment.wallTime() - t0)
            }
        }
        let stats = BenchStats(times)
        return (Double(Gemm.flops(m: m, n: n, k: k)) / max(stats.median, 1e-12), stats)
    }

    /// A plain `MPI_Allreduce` (in place, f32 sum) of `count` floats, the median of `repeats`,
    /// each after a barrier as the forward's allreduce is in `bench`.
    static func allReduce(count: Int, repeats: Int, world: Communicator) throws -> BenchStats {
        var buffer = [Float](repeating: 1, count: count)
        var times: [Double] = []
        try buffer.withUnsafeMutableBufferPointer { b in
            try world.allReduce(b, .sum)                                       // warm (connections, pages)
            for i in 0..<repeats {
                try world.barrier()
                let t0 = Environment.wallTime()
                try world.allReduce(b, .sum)
                times.append(Environment.wallTime() - t0)
                if i % 8 == 7 { for j in b.indices { b[j] = 1 } }               // keep the values finite
            }
        }
        return BenchStats(times)
    }

    /// `memcpy` of `bytes` on every rank at once, the median of `repeats`. Returns bytes moved
    /// per second counting what is read and what is written (2 × bytes per copy), the usual
    /// convention for copy bandwidth.
    static func copyBandwidth(bytes: Int, repeats: Int, world: Communicator) throws -> (bytesPerSecond: Double, seconds: BenchStats) {
        guard let src = malloc(bytes), let dst = malloc(bytes) else {
            throw CLIError.config("cannot allocate 2 × \(formatBytes(bytes)) for the copy-bandwidth probe — use a smaller --copy-mib")
        }
        defer { free(src); free(dst) }
        memset(src, 1, bytes)
        memset(dst, 2, bytes)                                                  // fault every page in first
        var times: [Double] = []
        for _ in 0..<repeats {
            try world.barrier()
            let t0 = Environment.wallTime()
            memcpy(dst, src, bytes)
            times.append(Environment.wallTime() - t0)
            // Read the copy back (a byte per page) into a global, so the copy cannot be optimized away.
            let d = dst.assumingMemoryBound(to: UInt8.self)
            var sum = 0
            for i in stride(from: 0, to: bytes, by: 4096) { sum &+= Int(d[i]) }
            benchSink &+= sum
        }
        let stats = BenchStats(times)
        return (2 * Double(bytes) / max(stats.median, 1e-12), stats)
    }
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
