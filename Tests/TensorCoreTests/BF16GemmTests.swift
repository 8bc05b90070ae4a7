import Foundation
import Testing
import TensorCore

/// `Gemm.run` with bf16 weights, on every route, against a float64 product of the same
/// bf16-rounded operands: A is taken at bf16 precision whatever it is stored in, accumulation is
/// f32, and a bf16 C is rounded once.
@Suite struct BF16GemmTests {
    struct Case: CustomStringConvertible {
        var m, n, k: Int
        var transA = false, transB = true
        var aBF16 = true, cBF16 = false
        var alpha: Float = 1, beta: Float = 0
        var pad = 0                       // extra leading-dimension padding: strided views
        var description: String {
            "m=\(m) n=\(n) k=\(k) A\(transA ? "ᵀ" : "")\(aBF16 ? " bf16" : " f32") B\(transB ? "ᵀ" : "") C\(cBF16 ? " bf16" : " f32") α=\(alpha) β=\(beta) pad=\(pad)"
        }
        var lda: Int { (transA ? m : k) + pad }
        var ldb: Int { (transB ? k : n) + pad }
        var ldc: Int { n + 2 * pad }
    }

    /// Values on a grid that bf16 does not represent exactly, so that skipped rounding shows.
    static func values(_ count: Int, _ salt: Int) -> [Float] {
        (0..<count).map { i in Float((i * 7919 + salt * 104_729) % 2001 - 1000) / 997 + 0.000_123 }
    }

    /// Runs `t` on `route` in `context` and checks every element of C (and that C's padding is untouched);
    /// returns the kernel that ran.
    @discardableResult
    static func check(_ t: Case, route: GemmRoute, context: GemmContext = GemmContext()) -> GemmKernel {
        let aCount = (t.transA ? t.k : t.m) * t.lda, bCount = (t.transB ? t.n : t.k) * t.ldb
        let a32 = values(aCount, 1), b16 = BF16.round(values(bCount, 2))
        let a16 = BF16.round(a32)
        let c0 = values(t.m * t.ldc, 3).map { t.beta == 0 ? Float.nan : $0 }    // beta = 0 must overwrite NaN
        let c0Used = t.cBF16 ? BF16.widen(BF16.round(c0)) : c0
        var c32 = c0, c16 = BF16.round(c0)
        let kernel = a32.withUnsafeBufferPointer { ap32 in a16.withUnsafeBufferPointer { ap16 in
            b16.withUnsafeBufferPointer { bp in c32.withUnsafeMutableBufferPointer { cp32 in c16.withUnsafeMutableBufferPointer { cp16 in
                Gemm.run(transA: t.transA, transB: t.transB, m: t.m, n: t.n, k: t.k, alpha: t.alpha,
                         a: t.aBF16 ? .bf16(ap16.baseAddress!) : .f32(ap32.baseAddress!), lda: t.lda,
                         b: .bf16(bp.baseAddress!), ldb: t.ldb, beta: t.beta,
                         c: t.cBF16 ? .bf16(cp16.baseAddress!) : .f32(cp32.baseAddress!), ldc: t.ldc,
                         route: route, context: context)
            } } }
        } }
        let got = t.cBF16 ? BF16.widen(c16) : c32
        for i in 0..<t.m {
            for j in 0..<t.n {
                var sum = 0.0, magnitude = 0.0
                for p in 0..<t.k {
                    let av = Double(a16[t.transA ? p * t.lda + i : i * t.lda + p].float)
                    let bv = Double(b16[t.transB ? j * t.ldb + p : p * t.ldb + j].float)
                    sum += av * bv
                    magnitude += abs(av * bv)
                }
                let old = t.beta == 0 ? 0 : Double(t.beta) * Double(c0Used[i * t.ldc + j])
                let want = Double(t.alpha) * sum + old
                // f32 accumulation of k terms (γ_k · Σ|a·b|), the alpha/beta operations, and a bf16 C's one rounding.
                var tolerance = (Double(t.k + 2) * 0x1p-24) * (abs(Double(t.alpha)) * magnitude + abs(old)) + 1e-30
                if t.cBF16 { tolerance += abs(want) * 0x1p-8 + 1e-38 }
                let value = Double(got[i * t.ldc + j])
                #expect(abs(value - want) <= tolerance, "\(t) via \(kernel) [\(i), \(j)]: \(value) vs \(want) ± \(tolerance)")
            }
            for j in t.n..<t.ldc {     // padding between rows is never written
                #expect(got[i * t.ldc + j].bitPattern == c0Used[i * t.ldc + j].bitPattern || (t.beta == 0 && got[i * t.ldc + j].isNaN),
                        "\(t): padding [\(i), \(j)] was written")
            }
        }
        return kernel
    }

    static let shapes: [(Int, Int, Int)] = [(1, 37, 19), (3, 40, 33), (9, 50, 70), (17, 33, 129)]

    @Test(arguments: GemmRoute.allCases)
    func everyRouteMatchesTheReference(route: GemmRoute) {
        for (m, n, k) in Self.shapes {
            for transB in [true, false] {
                for (aBF16, cBF16) in [(true, false), (false, false), (true, true)] {
                    for (alpha, beta) in [(Float(1), Float(0)), (Float(0.5), Float(1)), (Float(2), Float(-0.75))] {
                        for pad in [0, 3] {
                            Self.check(Case(m: m, n: n, k: k, transB: transB, aBF16: aBF16, cBF16: cBF16,
                                            alpha: alpha, beta: beta, pad: pad), route: route)
                        }
                    }
                }
            }
        }
    }

    @Test(arguments: GemmRoute.allCases)
    func transposedAIsRead(route: GemmRoute) {
        for (m, n, k) in [(1, 20, 9), (12, 21, 17)] {
            for aBF16 in [true, false] {
                Self.check(Case(m: m, n: n, k: k, transA: true, transB: false, aBF16: aBF16, pad: 2), route: route)
            }
        }
    }
}
