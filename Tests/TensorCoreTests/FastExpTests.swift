import Foundation
import Testing
import TensorCore
import TestSupport

/// `FastExp` and the softmax built on it: accuracy against libm, NaN propagation, every row
/// length (the eight-lane body and the scalar tail).
@Suite struct FastExpTests {
    @Test func scalarAndVectorExpAreWithinTwoUlpOfLibm() {
        var worst: Float = 0
        var x: Float = -87
        while x <= 88 {
            let want = expf(x)
            let scalar = FastExp.exp(x)
            let vector = FastExp.exp(SIMD8<Float>(repeating: x))
            worst = max(worst, abs(scalar - want) / want)
            #expect(vector[0] == scalar && vector[7] == scalar, "lane mismatch at \(x)")
            x += 0.0137
        }
        #expect(worst <= 2.4e-7, "worst relative error \(worst)")
        #expect(FastExp.exp(0) == 1)
    }

    @Test func nanStaysNanAndExtremesStayFinite() {
        #expect(FastExp.exp(Float.nan).isNaN)
        #expect(FastExp.exp(SIMD8<Float>(repeating: .nan))[3].isNaN)
        #expect(FastExp.exp(-Float.infinity) >= 0 && FastExp.exp(-Float.infinity) < 1e-37)
        #expect(FastExp.exp(-1000) < 1e-37)
        #expect(FastExp.exp(Float.infinity).isFinite && FastExp.exp(1000) > 1e38)
        #expect(Activation.sigmoid(0) == 0.5)
        #expect(isClose(Activation.sigmoid(30), 1) && Activation.sigmoid(-100) < 1e-37)
        #expect(Activation.sigmoid(.nan).isNaN)
    }

    /// The reference softmax, in f64 with libm.
    static func reference(_ x: [Float]) -> [Float] {
        let m = x.max() ?? 0
        let e = x.map { Foundation.exp(Double($0 - m)) }
        let s = e.reduce(0, +)
        return e.map { Float($0 / s) }
    }

    @Test(arguments: [1, 3, 7, 8, 9, 15, 16, 17, 64, 100, 257])
    func softmaxMatchesTheDefinitionForEveryLength(count: Int) {
        var x = (0..<count).map { Float(($0 * 37) % 23) * 0.7 - 6 }
        let want = Self.reference(x)
        let wantLSE = count == 0 ? -Double.infinity : log(x.map { exp(Double($0)) }.reduce(0, +))
        let lse = x.withUnsafeMutableBufferPointer { Kernels.softmax($0.baseAddress!, count: count) }
        for j in 0..<count { #expect(isClose(x[j], want[j], rtol: 1e-5, atol: 1e-7), "[\(j)] \(x[j]) vs \(want[j])") }
        #expect(count == 0 ? lse == -.infinity : abs(Double(lse) - wantLSE) <= 1e-5 * max(1, abs(wantLSE)), "log-sum-exp \(lse) vs \(wantLSE)")
        #expect(isClose(x.reduce(0, +), 1, rtol: 1e-5))
    }

    @Test(arguments: [5, 8, 13])
    func aNanScoreMakesTheWholeRowNan(count: Int) {
        for at in [0, count - 1] {
            var x = [Float](repeating: 1, count: count)
            x[at] = .nan
            _ = x.withUnsafeMutableBufferPointer { Kernels.softmax($0.baseAddress!, count: count) }
            #expect(x.allSatisfy { $0.isNaN }, "NaN at \(at) of \(count): \(x)")
        }
    }

    @Test func softmaxOnlyTouchesItsCount() {
        var x: [Float] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 99]
        _ = x.withUnsafeMutableBufferPointer { Kernels.softmax($0.baseAddress!, count: 10) }
        #expect(x[10] == 99)
    }
}
