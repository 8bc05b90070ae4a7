import Foundation
import TensorCore

/// Seconds on CLOCK_MONOTONIC.
func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

/// Runs each of `bodies` once per round, interleaved, for `rounds` rounds after one warm-up
/// round, and returns each body's times (so a slow moment of the shared machine hits all alike).
func interleaved(rounds: Int, _ bodies: [() -> Void]) -> [[Double]] {
    for body in bodies { body() }
    var times = [[Double]](repeating: [], count: bodies.count)
    for _ in 0..<rounds {
        for (i, body) in bodies.enumerated() {
            let t0 = now()
            body()
            times[i].append(now() - t0)
        }
    }
    return times
}

func median(_ xs: [Double]) -> Double {
    let s = xs.sorted()
    return s.isEmpty ? 0 : s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

/// Deterministic values in [-1, 1).
func values(_ count: Int, seed: UInt64) -> [Float] {
    var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
    return (0..<count).map { _ in
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        return Float(state >> 40) / Float(1 << 23) - 1
    }
}

func line(_ s: String) { FileHandle.standardOutput.write((s + "\n").data(using: .utf8)!) }

func fmt(_ x: Double, _ digits: Int = 1) -> String { String(format: "%.\(digits)f", x) }

/// What this run is on: CPU flags that matter, oneDNN's ISA and bf16 support, thread counts.
func conditions() -> String {
    let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
    let flags = ["avx2", "avx512f", "avx512_bf16", "amx_bf16"].filter { cpuinfo.contains(" \($0)") }
    let load = (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3).joined(separator: " ") ?? "?"
    return "cpu flags: \(flags.joined(separator: " ")); oneDNN \(OneDNN.version) bf16 \(OneDNN.bf16Support.rawValue) "
        + "(DNNL_MAX_CPU_ISA=\(ProcessInfo.processInfo.environment["DNNL_MAX_CPU_ISA"] ?? "unset")); "
        + "kernels \(KernelISA.best); OpenBLAS threads \(BLAS.threads), OpenMP threads \(OneDNN.threads.map(String.init) ?? "none"); "
        + "load average \(load)"
}

/// The read ceiling: a buffer of `bytes` read in eight interleaved streams and summed (what a
/// weight-streaming kernel can reach at best), its sum kept so the reads are not optimised away.
final class ReadCeiling {
    let bytes: Int
    let buffer: UnsafeMutableRawPointer
    private(set) var sink: Float = 0

    init(bytes: Int) {
        self.bytes = bytes
        buffer = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        memset(buffer, 1, bytes)
    }
    deinit { buffer.deallocate() }

    func read() {
        let f = UnsafeRawPointer(buffer), stream = bytes / 4 / 8
        var acc = [SIMD16<Float>](repeating: .zero, count: 8)
        for i in stride(from: 0, to: stream - 15, by: 16) {
            for s in 0..<8 { acc[s] += f.loadUnaligned(fromByteOffset: 4 * (s * stream + i), as: SIMD16<Float>.self) }
        }
        sink += acc.reduce(.zero, +).sum()
    }
}
