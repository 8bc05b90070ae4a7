import Foundation
@testable import MLA
import TensorCore
import Testing

/// The bf16 attention's GEMMs on bf16 operands (`runInBF16`) compute what the f32 GEMMs compute
/// on the same bf16 values: only the summation order differs, so the outputs agree to a bf16
/// rounding step, and a lost term (the rope keys, a head's values, the causal mask) shows.
@Suite struct AttentionBF16Tests {
    let heads = 3, nope = 16, rope = 8, vDim = 12

    func bf16Values(_ n: Int, salt: Double) -> [Float] {
        BF16.widen(BF16.round((0..<n).map { Float(sin(Double($0) * 0.731 + salt)) }))
    }

    /// Runs the kernel on one sequence of `nq` queries over `nk` keys, with bf16 GEMMs or f32 ones.
    func attend(nq: Int, nk: Int, inBF16: Bool) -> [Float] {
        let kernel = AttentionKernel(heads: heads, nope: nope, rope: rope, vDim: vDim,
                                     scaling: SoftmaxScaling(scale: 0.25, storing: .bf16))
        let dq = nope + rope, kvWidth = heads * (nope + vDim)
        let q = bf16Values(nq * heads * dq, salt: 1), kv = bf16Values(nk * kvWidth, salt: 2), kRope = bf16Values(nk * rope, salt: 3)
        var out = [Float](repeating: .nan, count: nq * heads * vDim)
        var scores = [Float](repeating: 0, count: AttentionKernel.blockRows * nk)
        q.withUnsafeBufferPointer { q in kv.withUnsafeBufferPointer { kv in kRope.withUnsafeBufferPointer { kr in
            out.withUnsafeMutableBufferPointer { o in scores.withUnsafeMutableBufferPointer { s in
                let operands = AttentionKernel.Operands(
                    q: q.baseAddress!, ldq: heads * dq, kNope: kv.baseAddress!, v: kv.baseAddress! + nope, ldk: kvWidth,
                    headStrideK: nope + vDim, kRope: kr.baseAddress!, ldkr: rope, out: o.baseAddress!, ldo: heads * vDim,
                    nq: nq, nk: nk)
                if inBF16 { kernel.runInBF16(operands, scores: s.baseAddress!) } else { kernel.runInF32(operands, scores: s.baseAddress!) }
            } }
        } } }
        return out
    }

    @Test(arguments: [(16, 16), (100, 100), (64, 64), (20, 150)])
    func bf16GEMMsGiveTheF32GEMMsResultToABF16Step(nq: Int, nk: Int) {
        let bf16 = attend(nq: nq, nk: nk, inBF16: true), f32 = attend(nq: nq, nk: nk, inBF16: false)
        let scale = f32.map(abs).max() ?? 0
        let worst = zip(bf16, f32).map { abs($0 - $1) }.max() ?? .nan
        #expect(scale > 0.01)
        #expect(worst <= scale * 0x1p-6, "max |Δ| \(worst) against max |out| \(scale)")
    }

    /// Runs the kernel on the same bf16 values given as f32 operands or as 2-byte ones.
    func attendHeld(nq: Int, nk: Int, inBF16: Bool, keysInTwoBytes: Bool) -> [Float] {
        let kernel = AttentionKernel(heads: heads, nope: nope, rope: rope, vDim: vDim,
                                     scaling: SoftmaxScaling(scale: 0.25, storing: .bf16))
        let dq = nope + rope, kvWidth = heads * (nope + vDim)
        let q = bf16Values(nq * heads * dq, salt: 1), kv = bf16Values(nk * kvWidth, salt: 2), kRope = bf16Values(nk * rope, salt: 3)
        let kv16 = BF16.round(kv)
        var out = [Float](repeating: .nan, count: nq * heads * vDim)
        var scores = [Float](repeating: 0, count: AttentionKernel.blockRows * nk)
        q.withUnsafeBufferPointer { q in kv.withUnsafeBufferPointer { kv in kv16.withUnsafeBufferPointer { kv16 in kRope.withUnsafeBufferPointer { kr in
            out.withUnsafeMutableBufferPointer { o in scores.withUnsafeMutableBufferPointer { s in
                let keys: AttentionKernel.Rows = keysInTwoBytes ? .bf16(kv16.baseAddress!) : .f32(kv.baseAddress!)
                let operands = AttentionKernel.Operands(
                    q: q.baseAddress!, ldq: heads * dq, kNope: keys, v: keys.advanced(by: nope), ldk: kvWidth,
                    headStrideK: nope + vDim, kRope: kr.baseAddress!, ldkr: rope, out: o.baseAddress!, ldo: heads * vDim,
                    nq: nq, nk: nk)
                if inBF16 { kernel.runInBF16(operands, scores: s.baseAddress!) } else { kernel.runInF32(operands, scores: s.baseAddress!) }
            } }
        } } } }
        return out
    }

    /// A bf16 prefill holds its expanded keys and values in 2 bytes: the kernel widens (f32 GEMMs)
    /// or copies (bf16 GEMMs) them per head, so the output has the bits of the same values held in
    /// f32, below the gathering threshold (two GEMMs per block) and above it, decode included.
    @Test(arguments: [(1, 1), (1, 40), (5, 5), (15, 70), (16, 16), (100, 100), (20, 150)])
    func keysAndValuesInTwoBytesGiveTheBitsOfTheSameValuesInF32(nq: Int, nk: Int) {
        for inBF16 in [false, true] {
            let held = attendHeld(nq: nq, nk: nk, inBF16: inBF16, keysInTwoBytes: true)
            let f32 = attendHeld(nq: nq, nk: nk, inBF16: inBF16, keysInTwoBytes: false)
            #expect(held.allSatisfy(\.isFinite) && held.map(\.bitPattern) == f32.map(\.bitPattern),
                    "nq \(nq) nk \(nk), bf16 GEMMs \(inBF16)")
        }
    }

    @Test func bf16GEMMsRunWhereOneDNNsBF16IsNativeFromSixteenQueries() {
        let bf16 = AttentionKernel(heads: 1, nope: 4, rope: 2, vDim: 4, scaling: SoftmaxScaling(scale: 1, storing: .bf16))
        let f32 = AttentionKernel(heads: 1, nope: 4, rope: 2, vDim: 4, scaling: SoftmaxScaling(scale: 1, storing: .f32))
        let native = OneDNN.bf16Support == .native
        #expect(bf16.multipliesInBF16(nq: AttentionKernel.gatherKeysFromQueries) == native)
        #expect(!bf16.multipliesInBF16(nq: AttentionKernel.gatherKeysFromQueries - 1))
        #expect(!f32.multipliesInBF16(nq: 256))
    }
}
