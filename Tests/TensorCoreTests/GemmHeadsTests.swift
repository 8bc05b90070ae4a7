import Testing
import TensorCore

/// `Gemm.runHeads`, the absorbed decode's one call for every head's W_UK or W_UV product, gives
/// each head the bits of its own `Gemm.run`, in both orders, bf16 and f32 weights, on the row
/// kernel's route and past it.
@Suite struct GemmHeadsTests {
    @Test(arguments: [false, true], [1, 2, 5, 40])
    func everyHeadGetsTheBitsOfItsOwnProduct(transB: Bool, m: Int) {
        let heads = 3, n = 24, k = 20
        let (aStride, bStride, cStride) = (k + 3, n * k + 7, n + 2)          // heads interleaved with other data, as in kv_b_proj
        let lda = heads * aStride, ldc = heads * cStride, ldb = transB ? k : n
        let a = BF16GemmTests.values(m * lda, 1)
        let w32 = BF16GemmTests.values(heads * bStride, 2), w16 = BF16.round(w32)
        for bf16 in [true, false] {
            var together = [Float](repeating: .nan, count: m * ldc), alone = together
            a.withUnsafeBufferPointer { ap in w16.withUnsafeBufferPointer { w16p in w32.withUnsafeBufferPointer { w32p in
                let b: GemmSource = bf16 ? .bf16(w16p.baseAddress!) : .f32(w32p.baseAddress!)
                together.withUnsafeMutableBufferPointer { cp in
                    Gemm.runHeads(heads, transB: transB, m: m, n: n, k: k, a: ap.baseAddress!, lda: lda, aStride: aStride,
                                  b: b, ldb: ldb, bStride: bStride, c: cp.baseAddress!, ldc: ldc, cStride: cStride)
                }
                alone.withUnsafeMutableBufferPointer { cp in
                    for h in 0..<heads {
                        Gemm.run(transB: transB, m: m, n: n, k: k, a: .f32(ap.baseAddress! + h * aStride), lda: lda, b: b.advanced(by: h * bStride),
                                 ldb: ldb, c: .f32(cp.baseAddress! + h * cStride), ldc: ldc, route: .openBLASForF32)
                    }
                }
            } } }
            #expect(together.map(\.bitPattern) == alone.map(\.bitPattern), "bf16=\(bf16) transB=\(transB) m=\(m)")
        }
    }
}
