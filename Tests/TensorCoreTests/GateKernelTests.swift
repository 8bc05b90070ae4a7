import Foundation
import Testing
import TensorCore

/// The eight-lane gate kernels: every length (the eight-lane body and the scalar tail) gives the
/// activation computed independently in Double, within FastExp's error; and the body's lanes
/// give, bit for bit, what the scalar tail gives (NaN, ±∞ and huge gates included).
@Suite struct GateKernelTests {
    static let gates: [Float] = (0..<203).map { Float($0 - 101) * 0.37 } + [.nan, .infinity, -.infinity, 1e30, -1e30, 0, -0.0, 88, -88]

    typealias Kernel = @Sendable (UnsafeMutablePointer<Float>, UnsafePointer<Float>, Int) -> Void
    static let kernels: [(name: String, kernel: Kernel, scalar: @Sendable (Float) -> Float, exact: @Sendable (Double) -> Double)] = [
        ("sigmoid", Kernels.multiplyBySigmoid, Activation.sigmoid, { 1 / (1 + Foundation.exp(-$0)) }),
        ("scaled_softsign", Kernels.multiplyByScaledSoftsign, Activation.scaledSoftsign, { 2 * $0 / (1 + abs($0)) }),
        ("softplus", Kernels.multiplyBySoftplus, Activation.softplus, { $0 > 20 ? $0 : log1p(exp($0)) }),
    ]

    static func run(_ kernel: Kernel, _ a: [Float], _ g: [Float]) -> [Float] {
        var out = a
        out.withUnsafeMutableBufferPointer { o in g.withUnsafeBufferPointer { gp in
            if !a.isEmpty { kernel(o.baseAddress!, gp.baseAddress!, a.count) }
        } }
        return out
    }

    @Test(arguments: [0, 1, 7, 8, 9, 15, 16, 17, 211])
    func everyLaneGivesTheActivationComputedInDouble(count: Int) {
        // Finite, moderate gates (the clamp of FastExp is tested with FastExpTests).
        let g = (0..<count).map { Float($0 % 37 - 18) * 0.61 }, a = (0..<count).map { Float($0 % 11) - 5.5 }
        for k in Self.kernels {
            let out = Self.run(k.kernel, a, g)
            for j in 0..<count {
                let want = Double(a[j]) * k.exact(Double(g[j]))
                #expect(abs(Double(out[j]) - want) <= 4e-7 * max(abs(want), 1e-3), "\(k.name) lane \(j) of \(count), gate \(g[j]): \(out[j]) vs \(want)")
            }
            #expect(out.count == count)
        }
    }

    @Test(arguments: [8, 9, 16, 211])
    func vectorLanesMatchTheScalarTailBitForBit(count: Int) {
        let g = Array(Self.gates.prefix(count)), a = (0..<count).map { Float($0 % 11) - 5.5 }
        for k in Self.kernels {
            let out = Self.run(k.kernel, a, g)
            for j in 0..<count {
                let want = a[j] * k.scalar(g[j])
                #expect(out[j].bitPattern == want.bitPattern || (out[j].isNaN && want.isNaN), "\(k.name) lane \(j), gate \(g[j]): \(out[j]) vs \(want)")
            }
        }
    }

    /// softplus over its whole range, against Double: relative accuracy where the result is
    /// tiny (very negative x, down to FastExp's clamp at −87), near 1, and past torch's threshold
    /// of 20; NaN stays NaN.
    @Test func softplusHoldsItsRelativeAccuracyEverywhere() {
        let xs: [Float] = stride(from: -100, through: 100, by: 0.173).map { Float($0) } + [-87, -30, -15.01, -14.99, -1e-6, 0, 1e-6, 19.99, 20.01, 88]
        for x in xs {
            let want = x > 20 ? Double(x) : log1p(exp(Double(x))), got = Activation.softplus(x)
            // Below −87 FastExp clamps eˣ to 1.6e-38 (its documented range): an absolute error of 2e-38 at most.
            #expect(abs(Double(got) - want) <= max(3e-7 * abs(want), 2e-38), "softplus(\(x)) = \(got), want \(want)")
        }
        #expect(Activation.softplus(.nan).isNaN)
    }
}
