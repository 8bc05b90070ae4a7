import Foundation
import TensorCore

/// Weight bytes per second of decode products (m rows, bf16 weights through the row kernel, f32
/// weights through OpenBLAS sgemv/sgemm for comparison, oneDNN's bf16 matmul where it makes one)
/// against a memcpy measured in the same rounds (bytes read + written, as bench counts it).
/// Weights that fit in cache are cycled through enough copies to stream from memory.
struct DecodeBench {
    var m: Int
    var n, k: Int          // the weight is [n, k] (transB) or [k, n]
    var transB: Bool
    var rounds: Int
    /// Bytes of weight copies to cycle through, so that every product reads from memory (0: one copy, hot).
    var streamBytes: Int

    func run(memcpyBytes: Int) {
        let copies = max(1, streamBytes / (2 * n * k))
        let w16 = (0..<copies).map { BF16.round(values(n * k, seed: UInt64(10 + $0))) }
        let w32Copies = max(1, streamBytes / (4 * n * k))
        let w32 = (0..<w32Copies).map { values(n * k, seed: UInt64(10 + $0)) }
        let x = values(m * k, seed: 3)
        var y = [Float](repeating: 0, count: m * n)
        let ldw = transB ? k : n
        let context = GemmContext()
        var i16 = 0, i32 = 0, kernel16 = "", kernelDNNL = ""
        let src = UnsafeMutableRawPointer.allocate(byteCount: memcpyBytes, alignment: 64)
        let dst = UnsafeMutableRawPointer.allocate(byteCount: memcpyBytes, alignment: 64)
        defer { src.deallocate(); dst.deallocate() }
        memset(src, 1, memcpyBytes); memset(dst, 0, memcpyBytes)

        // The read ceiling: the same memcpy source read in eight interleaved streams and summed.
        var readSink: Float = 0
        let readFloats = memcpyBytes / 4, stream = readFloats / 8
        let readAll = {
            let f = UnsafeRawPointer(src)
            var acc = [SIMD16<Float>](repeating: .zero, count: 8)
            for i in stride(from: 0, to: stream - 15, by: 16) {
                for s in 0..<8 { acc[s] += f.loadUnaligned(fromByteOffset: 4 * (s * stream + i), as: SIMD16<Float>.self) }
            }
            readSink += acc.reduce(.zero, +).sum()
        }
        var bodies: [() -> Void] = [{ _ = memcpy(dst, src, memcpyBytes) }, readAll]
        bodies.append {
            x.withUnsafeBufferPointer { xp in w16[i16].withUnsafeBufferPointer { wp in y.withUnsafeMutableBufferPointer { yp in
                kernel16 = Gemm.run(transB: transB, m: m, n: n, k: k, a: .f32(xp.baseAddress!), lda: k, b: .bf16(wp.baseAddress!),
                                    ldb: ldw, c: .f32(yp.baseAddress!), ldc: n, context: context).description
            } } }
            i16 = (i16 + 1) % copies
        }
        bodies.append {
            x.withUnsafeBufferPointer { xp in w32[i32].withUnsafeBufferPointer { wp in y.withUnsafeMutableBufferPointer { yp in
                Gemm.run(transB: transB, m: m, n: n, k: k, a: xp.baseAddress!, lda: k, b: wp.baseAddress!, ldb: ldw,
                         c: yp.baseAddress!, ldc: n)
            } } }
            i32 = (i32 + 1) % w32Copies
        }
        bodies.append {
            x.withUnsafeBufferPointer { xp in w16[i16].withUnsafeBufferPointer { wp in y.withUnsafeMutableBufferPointer { yp in
                kernelDNNL = Gemm.run(transB: transB, m: m, n: n, k: k, a: .f32(xp.baseAddress!), lda: k, b: .bf16(wp.baseAddress!),
                                      ldb: ldw, c: .f32(yp.baseAddress!), ldc: n, route: .oneDNN, context: context).description
            } } }
            i16 = (i16 + 1) % copies
        }
        let times = interleaved(rounds: rounds, bodies).map(median)
        if readSink.isNaN { line("") }        // keeps the read from being optimised away
        let copyRate = 2 * Double(memcpyBytes) / times[0], readRate = Double(memcpyBytes) / times[1]
        let bytes16 = Double(2 * n * k), bytes32 = Double(4 * n * k), flops = Double(Gemm.flops(m: m, n: n, k: k))
        line("[\(m), \(k)]·\(transB ? "[\(n), \(k)]ᵀ" : "[\(k), \(n)]"), \(copies == 1 && streamBytes < 4 * 2 * n * k ? "one copy" : "\(copies) bf16 / \(w32Copies) f32 copies cycled") — median of \(rounds) interleaved rounds")
        line("  memcpy \(memcpyBytes >> 20) MiB       \(fmt(copyRate / 1e9)) GB/s (read + write)")
        line("  read \(memcpyBytes >> 20) MiB         \(fmt(readRate / 1e9)) GB/s (eight streams) = \(fmt(readRate / copyRate, 2)) of memcpy")
        for (name, t, bytes, kernel) in [("bf16", times[2], bytes16, kernel16), ("f32 OpenBLAS", times[3], bytes32, "OpenBLAS"),
                                         ("bf16 oneDNN", times[4], bytes16, kernelDNNL)] {
            let rate = bytes / t
            line("  \(name.padding(toLength: 16, withPad: " ", startingAt: 0)) \(fmt(rate / 1e9)) GB/s weight = \(fmt(rate / copyRate, 2)) of memcpy, \(fmt(rate / readRate, 2)) of read, "
                 + "\(fmt(t * 1e6, 0)) µs, \(fmt(flops / t / 1e9)) GFLOP/s  [\(kernel)]")
        }
    }
}
