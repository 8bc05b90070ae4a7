import Foundation
import TensorCore

/// GFLOP/s of one product shape on every path, interleaved in one run: OpenBLAS f32, oneDNN f32,
/// oneDNN bf16 (native or emulated, when oneDNN makes one), the widening fallback, and the row
/// kernel for small m. Weights `[out, in]` (transB) or `[in, out]`.
struct GemmBench {
    var m, n, k: Int
    var transB: Bool
    var rounds: Int

    func run() {
        let a32 = values(m * k, seed: 1), b32 = values(n * k, seed: 2)
        let a16 = BF16.round(a32), b16 = BF16.round(b32)
        var c = [Float](repeating: 0, count: m * n)
        let ldb = transB ? k : n
        let context = GemmContext()
        if let mib = ProcessInfo.processInfo.environment["KERNEL_BENCH_WIDEN_MIB"].flatMap(Int.init) { context.widenBlockBytes = mib << 20 }
        var names: [String] = [], bodies: [() -> Void] = []
        var kernels: [String] = []

        func product(_ a: GemmSource, _ b: GemmSource, _ cp: UnsafeMutablePointer<Float>, _ route: GemmRoute) -> GemmKernel {
            Gemm.run(transB: transB, m: m, n: n, k: k, a: a, lda: k, b: b, ldb: ldb, c: .f32(cp), ldc: n, route: route, context: context)
        }
        // Each body re-derives its pointers; the arrays outlive the closures.
        func add(_ name: String, _ body: @escaping (UnsafeMutablePointer<Float>) -> String) {
            names.append(name)
            bodies.append {
                c.withUnsafeMutableBufferPointer { cp in
                    let kernel = body(cp.baseAddress!)
                    if kernels.count < names.count { kernels.append(kernel) }
                }
            }
        }
        add("OpenBLAS f32") { cp in
            a32.withUnsafeBufferPointer { ap in b32.withUnsafeBufferPointer { bp in
                product(.f32(ap.baseAddress!), .f32(bp.baseAddress!), cp, .openBLAS).description } }
        }
        add("oneDNN f32") { cp in
            a32.withUnsafeBufferPointer { ap in b32.withUnsafeBufferPointer { bp in
                (try? context.oneDNNMatmul(transB: transB, m: m, n: n, k: k, a: .f32(ap.baseAddress!), lda: k,
                                           b: .f32(bp.baseAddress!), ldb: ldb, c: .f32(cp), ldc: n)) ?? "refused" } }
        }
        let bf16OneDNN = a16.withUnsafeBufferPointer { ap in b16.withUnsafeBufferPointer { bp in c.withUnsafeMutableBufferPointer { cp in
            (try? context.oneDNNMatmul(transB: transB, m: m, n: n, k: k, a: .bf16(ap.baseAddress!), lda: k,
                                       b: .bf16(bp.baseAddress!), ldb: ldb, c: .f32(cp.baseAddress!), ldc: n)) != nil } } }
        if bf16OneDNN {
            add("oneDNN bf16") { cp in
                a16.withUnsafeBufferPointer { ap in b16.withUnsafeBufferPointer { bp in
                    product(.bf16(ap.baseAddress!), .bf16(bp.baseAddress!), cp, .oneDNN).description } }
            }
        }
        add("bf16 widened") { cp in
            a16.withUnsafeBufferPointer { ap in b16.withUnsafeBufferPointer { bp in
                product(.bf16(ap.baseAddress!), .bf16(bp.baseAddress!), cp, .openBLAS).description } }
        }
        if m <= 64 {
            add("bf16 rows") { cp in
                a16.withUnsafeBufferPointer { ap in b16.withUnsafeBufferPointer { bp in
                    product(.bf16(ap.baseAddress!), .bf16(bp.baseAddress!), cp, .rows).description } }
            }
        }
        // oneDNN with the weight in the layout it chooses (reordered once, outside the timing), and
        // what making a primitive costs.
        for precision in Precision.allCases {
            let key = MatmulKey(m: m, n: n, k: k, transB: transB, lda: k, ldb: ldb, ldc: n, a: precision, b: precision, c: .f32,
                                blockedWeights: true)
            let t0 = now()
            guard let layout = try? context.oneDNNWeightLayout(key) else { continue }
            line("  oneDNN's own \(precision) weight layout: \(layout.isPlain ? "the kept one" : "another"), \(layout.bytes) bytes "
                 + "(kept \(n * k * precision.bytesPerElement)), \(layout.implementation); primitive made in \(fmt((now() - t0) * 1e3, 2)) ms")
            guard !layout.isPlain else { continue }
            let blocked = UnsafeMutableRawPointer.allocate(byteCount: layout.bytes, alignment: 64)
            let (a, b): (UnsafeRawPointer, UnsafeRawPointer) = precision == .f32
                ? (a32.withUnsafeBytes { $0.baseAddress! }, b32.withUnsafeBytes { $0.baseAddress! })
                : (a16.withUnsafeBytes { $0.baseAddress! }, b16.withUnsafeBytes { $0.baseAddress! })
            guard (try? context.oneDNNReorderWeights(key, from: b, into: blocked)) != nil else { continue }
            add("oneDNN \(precision) own") { cp in (try? context.oneDNNMatmul(key, a: a, b: blocked, c: cp)) ?? "refused" }
        }
        let times = interleaved(rounds: rounds, bodies)
        let flops = Double(2 * m * n * k)
        line("[\(m), \(k)]·\(transB ? "[\(n), \(k)]ᵀ" : "[\(k), \(n)]") — median of \(rounds) interleaved rounds")
        for (i, name) in names.enumerated() {
            let t = median(times[i])
            line("  \(name.padding(toLength: 16, withPad: " ", startingAt: 0)) \(fmt(flops / t / 1e9)) GFLOP/s  \(fmt(t * 1e3, 3)) ms  [\(kernels[i])]")
        }
    }
}
