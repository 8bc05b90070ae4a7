import Foundation
@testable import MLA
import TensorCore
import Testing

/// The absorbed kernel stacks heads into groups (all of them for a decode token, fewer as the
/// queries per sequence grow); every grouping must give what expanding kv_b_proj gives.
@Suite struct AbsorbedKernelTests {
    let heads = 6, nope = 8, rope = 4, vDim = 6, lora = 10, scale: Float = 0.3

    func values(_ n: Int, salt: Double) -> [Float] { (0..<n).map { Float(sin(Double($0) * 0.37 + salt)) } }

    /// Head h's output for query i, by expanding k_nope and v from the latent, written plainly.
    func expanded(q: [Float], cache: [Float], kvB: [Float], nq: Int, nk: Int) -> [Float] {
        let width = lora + rope, dq = nope + rope, headRows = nope + vDim
        var out = [Float](repeating: 0, count: nq * heads * vDim)
        for h in 0..<heads {
            let w = h * headRows * lora                                     // W_UK rows, then W_UV rows
            for i in 0..<nq {
                let visible = nk - nq + i + 1
                var s = [Float](repeating: 0, count: visible)
                for j in 0..<visible {
                    var dot: Float = 0
                    for d in 0..<nope {
                        var k: Float = 0
                        for l in 0..<lora { k += cache[j * width + l] * kvB[w + d * lora + l] }
                        dot += q[i * heads * dq + h * dq + d] * k
                    }
                    for r in 0..<rope { dot += q[i * heads * dq + h * dq + nope + r] * cache[j * width + lora + r] }
                    s[j] = scale * dot
                }
                let m = s.max()!, e = s.map { exp($0 - m) }, z = e.reduce(0, +)
                for c in 0..<vDim {
                    var acc: Float = 0
                    for j in 0..<visible {
                        var v: Float = 0
                        for l in 0..<lora { v += cache[j * width + l] * kvB[w + (nope + c) * lora + l] }
                        acc += e[j] / z * v
                    }
                    out[i * heads * vDim + h * vDim + c] = acc
                }
            }
        }
        return out
    }

    @Test(arguments: [(1, 40), (3, 40), (40, 60), (50, 60), (130, 130)])
    func everyGroupingOfHeadsEqualsExpandingTheLatent(nq: Int, nk: Int) {
        let kernel = AbsorbedKernel(heads: heads, nope: nope, rope: rope, vDim: vDim, lora: lora, scale: scale)
        let g = kernel.groupHeads(nq: nq)
        #expect(g == max(1, min(heads, AbsorbedKernel.groupRows / nq)))
        let q = values(nq * heads * (nope + rope), salt: 1)
        let cache = values(nk * (lora + rope), salt: 2)
        let kvB = values(heads * (nope + vDim) * lora, salt: 3).map { $0 * 0.5 }
        var out = [Float](repeating: .nan, count: nq * heads * vDim)
        var work = [Float](repeating: .nan, count: kernel.workspaceCount(nq: nq, nk: nk))
        q.withUnsafeBufferPointer { qp in
            cache.withUnsafeBufferPointer { cp in
                kvB.withUnsafeBufferPointer { wp in
                    out.withUnsafeMutableBufferPointer { op in
                        work.withUnsafeMutableBufferPointer { wk in
                            kernel.run(q: qp.baseAddress!, ldq: heads * (nope + rope), cache: cp.baseAddress!, kvB: wp.baseAddress!,
                                       out: op.baseAddress!, ldo: heads * vDim, nq: nq, nk: nk, work: wk.baseAddress!)
                        }
                    }
                }
            }
        }
        let want = expanded(q: q, cache: cache, kvB: kvB, nq: nq, nk: nk)
        let worst = zip(out, want).map { abs($0 - $1) }.max()!
        #expect(worst < 1e-5, "nq \(nq), \(g) heads per group: max |Δ| \(worst)")
    }
}
