import Testing
import TensorCore
import TestSupport

/// `Gemm.run` with one row or one column goes through `cblas_sgemv`; it must give what the
/// general product gives, for every transpose, leading dimension and beta.
@Suite struct GemmVectorTests {
    /// C = alpha · op(A) · op(B) + beta · C by the definition, on row-major storage.
    static func reference(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: [Float], lda: Int,
                          b: [Float], ldb: Int, beta: Float, c: [Float], ldc: Int) -> [Float] {
        var out = c
        for i in 0..<m {
            for j in 0..<n {
                var s: Float = 0
                for p in 0..<k {
                    let av = transA ? a[p * lda + i] : a[i * lda + p]
                    let bv = transB ? b[j * ldb + p] : b[p * ldb + j]
                    s += av * bv
                }
                out[i * ldc + j] = alpha * s + (beta == 0 ? 0 : beta * c[i * ldc + j])
            }
        }
        return out
    }

    static func values(_ count: Int, _ salt: Int) -> [Float] {
        (0..<count).map { Float(($0 * 7 + salt * 13) % 11) / 4 - 1.25 }
    }

    @Test(arguments: [(1, 37, 19), (23, 1, 19), (1, 1, 5)], [false, true])
    func oneRowOrColumnMatchesTheDefinition(shape: (Int, Int, Int), transA: Bool) {
        let (m, n, k) = shape
        for transB in [false, true] {
            for (alpha, beta) in [(Float(1), Float(0)), (Float(0.5), Float(1)), (Float(2), Float(-0.5))] {
                // Padded leading dimensions, so the strided cases are exercised.
                let lda = (transA ? m : k) + 3, ldb = (transB ? k : n) + 2, ldc = n + 4
                let a = Self.values((transA ? k : m) * lda, 1), b = Self.values((transB ? n : k) * ldb, 2)
                var c = Self.values(m * ldc, 3)
                if beta == 0 { for i in c.indices { c[i] = .nan } }           // beta = 0 must overwrite NaN
                let expected = Self.reference(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                                              b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
                a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in c.withUnsafeMutableBufferPointer { cp in
                    Gemm.run(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: ap.baseAddress!, lda: lda,
                             b: bp.baseAddress!, ldb: ldb, beta: beta, c: cp.baseAddress!, ldc: ldc)
                } } }
                for i in 0..<m {
                    for j in 0..<n {
                        let got = c[i * ldc + j], want = expected[i * ldc + j]
                        #expect(isClose(got, want, rtol: 1e-5, atol: 1e-5),
                                "m=\(m) n=\(n) k=\(k) transA=\(transA) transB=\(transB) alpha=\(alpha) beta=\(beta) [\(i), \(j)]: \(got) vs \(want)")
                    }
                }
                // Only C's [m, n] window is written; the padding keeps its values.
                for i in 0..<m { for j in n..<ldc where beta != 0 { #expect(c[i * ldc + j] == expected[i * ldc + j]) } }
            }
        }
    }
}
