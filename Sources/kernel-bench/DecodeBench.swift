import Foundation
import TensorCore

/// Weight bytes per second of decode products (m rows, bf16 weights through the row kernel, f32
/// weights through OpenBLAS sgemv/sgemm for comparison, oneDNN's bf16 matmul where it makes one,
/// fp8 e4m3 weights with tile scales through the fp8 row kernel for `[out, in]` weights)
/// against a memcpy measured in the same rounds (bytes read + written, as bench counts it).
/// Weights that fit in cache are copied often enough to stream from memory; each timed body runs
/// through every copy back to back.
struct DecodeBench {
    var m: Int
    var n, k: Int          // the weight is [n, k] (transB) or [k, n]
    var transB: Bool
    var rounds: Int
    /// Bytes of weight copies to run through, so that every product reads from memory.
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
        var kernels: [GemmRoute: String] = [:]
        let ceiling = ReadCeiling(bytes: memcpyBytes), src = ceiling.buffer   // the memcpy's source, read alone for the ceiling
        let dst = UnsafeMutableRawPointer.allocate(byteCount: memcpyBytes, alignment: 64)
        defer { dst.deallocate() }
        memset(dst, 0, memcpyBytes)
        var bodies: [() -> Void] = [{ _ = memcpy(dst, src, memcpyBytes) }, ceiling.read]
        // Each body runs the product once on every copy, back to back, as a decode step streams
        // one weight after another; its time is divided by the copies.
        func bf16(_ route: GemmRoute) -> () -> Void {
            {
                x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { yp in
                    for w in w16 {
                        w.withUnsafeBufferPointer { wp in
                            let kernel = Gemm.run(transB: transB, m: m, n: n, k: k, a: .f32(xp.baseAddress!), lda: k,
                                                  b: .bf16(wp.baseAddress!), ldb: ldw, c: .f32(yp.baseAddress!), ldc: n,
                                                  route: route, context: context)
                            kernels[route] = kernels[route] ?? kernel.description
                        }
                    }
                } }
            }
        }
        bodies.append(bf16(.automatic))
        bodies.append {
            x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { yp in
                for w in w32 {
                    w.withUnsafeBufferPointer { wp in
                        Gemm.run(transB: transB, m: m, n: n, k: k, a: xp.baseAddress!, lda: k, b: wp.baseAddress!, ldb: ldw,
                                 c: yp.baseAddress!, ldc: n)
                    }
                }
            } }
        }
        bodies.append(bf16(.oneDNN))
        // fp8 e4m3 with 128×128 tile scales through its row kernel ([out, in] weights only).
        let fp8Copies = max(1, streamBytes / (n * k))
        let w8 = transB ? (0..<fp8Copies).map { try! FP8BlockMatrix(quantizing: Matrix(rows: n, cols: k, values: values(n * k, seed: UInt64(10 + $0)))) } : []
        bodies.append {
            x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { yp in
                for w in w8 { w.rowProduct(xp.baseAddress!, m: m, into: yp.baseAddress!) }
            } }
        }
        var times = interleaved(rounds: rounds, bodies).map(median)
        times[2] /= Double(copies); times[3] /= Double(w32Copies); times[4] /= Double(copies); times[5] /= Double(fp8Copies)
        if ceiling.sink.isNaN { line("") }     // keeps the read from being optimised away
        let copyRate = 2 * Double(memcpyBytes) / times[0], readRate = Double(memcpyBytes) / times[1]
        let bytes16 = Double(2 * n * k), bytes32 = Double(4 * n * k), flops = Double(2 * m * n * k)
        line("[\(m), \(k)]·\(transB ? "[\(n), \(k)]ᵀ" : "[\(k), \(n)]"), \("\(copies) bf16 / \(w32Copies) f32 copies back to back") — median of \(rounds) interleaved rounds")
        line("  memcpy \(memcpyBytes >> 20) MiB       \(fmt(copyRate / 1e9)) GB/s (read + write)")
        line("  read \(memcpyBytes >> 20) MiB         \(fmt(readRate / 1e9)) GB/s (eight streams) = \(fmt(readRate / copyRate, 2)) of memcpy")
        for (name, t, bytes, kernel) in [("bf16", times[2], bytes16, kernels[.automatic] ?? ""), ("f32 OpenBLAS", times[3], bytes32, "OpenBLAS"),
                                         ("bf16 oneDNN", times[4], bytes16, kernels[.oneDNN] ?? "")]
                                        + (transB ? [("fp8 (e4m3)", times[5], Double(w8[0].bytes), "fp8 row kernel (\(KernelISA.best))")] : []) {
            let rate = bytes / t
            line("  \(name.padding(toLength: 16, withPad: " ", startingAt: 0)) \(fmt(rate / 1e9)) GB/s weight = \(fmt(rate / copyRate, 2)) of memcpy, \(fmt(rate / readRate, 2)) of read, "
                 + "\(fmt(t * 1e6, 0)) µs, \(fmt(flops / t / 1e9)) GFLOP/s  [\(kernel)]")
        }
    }
}
