import TensorCore

/// One line per route at a prefill-like and a decode-like shape: `route m kernel relative-error`,
/// the error against a float64 product of the same bf16 operands. The tests run this under
/// several DNNL_MAX_CPU_ISA caps, since oneDNN fixes its ISA once per process.
enum RouteCheck {
    static func run() {
        line("bf16Support \(OneDNN.bf16Support.rawValue)")
        let n = 48, k = 80
        for m in [40, 1] {
            let a = BF16.round(values(m * k, seed: 4)), b = BF16.round(values(n * k, seed: 5))
            var reference = [Double](repeating: 0, count: m * n)
            for i in 0..<m { for j in 0..<n { for p in 0..<k { reference[i * n + j] += Double(a[i * k + p].float) * Double(b[j * k + p].float) } } }
            let scale = reference.map(abs).max() ?? 1
            for route in GemmRoute.allCases {
                var c = [Float](repeating: .nan, count: m * n)
                let kernel = a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in c.withUnsafeMutableBufferPointer { cp in
                    Gemm.run(transB: true, m: m, n: n, k: k, a: .bf16(ap.baseAddress!), lda: k, b: .bf16(bp.baseAddress!), ldb: k,
                             c: .f32(cp.baseAddress!), ldc: n, route: route)
                } } }
                let error = zip(c, reference).map { abs(Double($0) - $1) }.max() ?? .infinity
                line("\(route.rawValue) \(m) \(error.isNaN ? "nan" : String(error / scale)) \(kernel)")
            }
        }
    }
}
