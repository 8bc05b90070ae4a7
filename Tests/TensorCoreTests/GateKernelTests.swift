import Testing
import TensorCore

/// The eight-lane gate kernels give, lane for lane, what the scalar activations give: every
/// length (body and tail), NaN, ±∞ and huge gates included.
@Suite struct GateKernelTests {
    static let gates: [Float] = (0..<203).map { Float($0 - 101) * 0.37 } + [.nan, .infinity, -.infinity, 1e30, -1e30, 0, -0.0, 88, -88]

    @Test(arguments: [0, 1, 7, 8, 9, 16, 211])
    func vectorGateMatchesTheScalarActivation(count: Int) {
        let g = Array(Self.gates.prefix(count)), a = (0..<count).map { Float($0 % 11) - 5.5 }
        for (kernel, scalar) in [(Kernels.multiplyBySigmoid, Activation.sigmoid), (Kernels.multiplyByScaledSoftsign, Activation.scaledSoftsign)]
            as [((UnsafeMutablePointer<Float>, UnsafePointer<Float>, Int) -> Void, (Float) -> Float)] {
            var out = a
            out.withUnsafeMutableBufferPointer { o in g.withUnsafeBufferPointer { gp in
                if count > 0 { kernel(o.baseAddress!, gp.baseAddress!, count) }
            } }
            for j in 0..<count {
                let want = a[j] * scalar(g[j])
                #expect(out[j].bitPattern == want.bitPattern || (out[j].isNaN && want.isNaN), "lane \(j), gate \(g[j]): \(out[j]) vs \(want)")
            }
        }
    }
}
