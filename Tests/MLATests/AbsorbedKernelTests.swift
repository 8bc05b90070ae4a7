import Foundation
@testable import MLA
import TensorCore
import TensorParallel
import Testing

/// The absorbed kernel stacks heads into groups (all of them for a decode token, fewer as the
/// queries per sequence grow); every grouping must give what expanding kv_b_proj gives.
@Suite struct AbsorbedKernelTests {
    let heads = 6, nope = 8, rope = 4, vDim = 6, lora = 10, scale: Float = 0.3
    init() {}

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
        let kernel = AbsorbedKernel(heads: heads, nope: nope, rope: rope, vDim: vDim, lora: lora, scaling: SoftmaxScaling(scale: scale, storing: .f32))
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
                            kernel.run(q: qp.baseAddress!, ldq: heads * (nope + rope), keys: CachedRows(rows: cp.baseAddress!, count: nk, width: lora + rope),
                                       kvB: .f32(wp.baseAddress!), out: op.baseAddress!, ldo: heads * vDim, nq: nq, work: wk.baseAddress!)
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

/// Decode context parallelism's algebra without MPI: attending over C interleaved parts of the
/// cache (token i in part i mod C) and merging the parts with `LogSumExpMerge.correct` (then
/// summing them, the reduce-scatter's part) gives the attention over the whole cache, for every
/// query position (some parts see no key at all).
@Suite struct ContextSplitTests {
    let base = AbsorbedKernelTests()

    @Test(arguments: [(1, 9, 2), (4, 9, 3), (5, 5, 4), (2, 3, 4), (1, 1, 3)])
    func mergingInterleavedPartsWithTheirLogSumExpsEqualsTheWholeCache(nq: Int, nk: Int, parts: Int) {
        let (heads, nope, rope, vDim, lora) = (base.heads, base.nope, base.rope, base.vDim, base.lora)
        let kernel = AbsorbedKernel(heads: heads, nope: nope, rope: rope, vDim: vDim, lora: lora, scaling: SoftmaxScaling(scale: base.scale, storing: .f32))
        let width = lora + rope, ldq = heads * (nope + rope), rows = heads * nq
        let q = base.values(nq * ldq, salt: 1), cache = base.values(nk * width, salt: 2)
        let kvB = base.values(heads * (nope + vDim) * lora, salt: 3).map { $0 * 0.5 }
        var qs = [Float](repeating: 0, count: rows * width)
        q.withUnsafeBufferPointer { qp in kvB.withUnsafeBufferPointer { wp in qs.withUnsafeMutableBufferPointer { d in
            kernel.absorb(q: qp.baseAddress!, ldq: ldq, kvB: .f32(wp.baseAddress!), heads: 0..<heads, nq: nq, into: d.baseAddress!)
        } } }
        // Each part: its rows of the cache, attended with each query's visible prefix.
        var partOut: [[Float]] = [], partLSE: [[Float]] = []
        for k in 0..<parts {
            let share = TokenShare(index: k, count: parts)
            let local = (0..<nk).filter(share.holds)
            let sub = local.flatMap { cache[$0 * width ..< ($0 + 1) * width] }
            var ol = [Float](repeating: .nan, count: rows * lora), lse = [Float](repeating: .nan, count: rows)
            var s = [Float](repeating: 0, count: max(rows * local.count, 1))
            qs.withUnsafeBufferPointer { qp in sub.withUnsafeBufferPointer { cp in ol.withUnsafeMutableBufferPointer { o in
                lse.withUnsafeMutableBufferPointer { l in s.withUnsafeMutableBufferPointer { sp in
                    kernel.attend(qp.baseAddress!, rows: rows, keys: CachedRows(rows: cp.baseAddress ?? qp.baseAddress!, count: local.count, width: width),
                                  visible: { share.localCount(nk - nq + $0 % nq + 1) }, scores: sp.baseAddress!,
                                  into: o.baseAddress!, lse: l.baseAddress!)
                } }
            } } }
            partOut.append(ol)
            partLSE.append(lse)
        }
        let gathered = partLSE.flatMap { $0 }                                       // [parts, rows]
        var merged = [Float](repeating: 0, count: rows * lora)
        for k in 0..<parts {
            partOut[k].withUnsafeMutableBufferPointer { o in partLSE[k].withUnsafeBufferPointer { l in gathered.withUnsafeBufferPointer { g in
                LogSumExpMerge.correct(o, width: lora, logSumExps: l, gathered: g)
            } } }
            for i in merged.indices { merged[i] += partOut[k][i] }
        }
        var out = [Float](repeating: .nan, count: nq * heads * vDim)
        merged.withUnsafeBufferPointer { mp in kvB.withUnsafeBufferPointer { wp in out.withUnsafeMutableBufferPointer { o in
            kernel.expand(mp.baseAddress!, kvB: .f32(wp.baseAddress!), heads: 0..<heads, nq: nq, out: o.baseAddress!, ldo: heads * vDim)
        } } }
        let want = base.expanded(q: q, cache: cache, kvB: kvB, nq: nq, nk: nk)
        let worst = zip(out, want).map { abs($0 - $1) }.max()!
        #expect(worst < 1e-5, "nq \(nq), nk \(nk), \(parts) parts: max |Δ| \(worst)")
    }

    @Test func aShareKeepsTokensIModCAndCountsVisibleKeys() throws {
        let config = MLAConfig(hiddenSize: 8, numAttentionHeads: 1, qLoraRank: nil, kvLoraRank: 2, qkNopeHeadDim: 2,
                               qkRopeHeadDim: 2, vHeadDim: 2)
        let cache = KVCache(config: config, sequences: 1, share: TokenShare(index: 1, count: 3))
        let rows = try Matrix(rows: 7, cols: 4, values: (0..<28).map(Float.init))     // token t holds 4t … 4t+3
        cache.append(slot: 0, from: rows, rows: 0..<4)
        cache.append(slot: 0, from: rows, rows: 4..<7)
        #expect(cache.lengths == [7] && cache.localLengths == [2])                      // tokens 1 and 4
        let keys = cache.rows(slot: 0), p = keys.tile(0..<keys.count)
        let kept = (0..<8).map { p[$0] }
        #expect(kept == [4, 5, 6, 7, 16, 17, 18, 19])
        #expect((0...8).map { cache.share.localCount($0) } == [0, 0, 1, 1, 1, 2, 2, 2, 3])
        #expect(cache.bytes == 2 * 4 * 4)                                               // two tokens of 4 f32 values
    }
}
