import Testing
import TensorCore

/// The invariant forward's products give each element the bits of its definition, whatever the
/// row count, the column count, the tile the element falls in, the kernel path (few rows or
/// packed), the weight's format and the instruction set.
@Suite struct FixedOrderGemmTests {
    static func values(_ n: Int, seed: UInt32) -> [Float] {
        var state = seed
        return (0..<n).map { _ in
            state = state &* 1_664_525 &+ 1_013_904_223
            return Float(Int32(bitPattern: state >> 8) - (1 << 23)) / Float(1 << 22) * (state & 1 == 0 ? 1 : 1e-3)
        }
    }

    /// Shapes crossing every path: one row, the few-row path's groups of three, the packed path's
    /// 6-row tiles and 16-column panels, column tails, k below and across the packed depth.
    static let shapes: [(m: Int, n: Int, k: Int)] = [(1, 1, 1), (1, 37, 300), (2, 40, 17), (3, 33, 8), (5, 72, 9), (6, 8, 64),
                                                      (7, 17, 257), (13, 100, 31), (40, 530, 300), (64, 48, 512)]

    @Test(arguments: [Precision.f32, .bf16])
    func nnGivesTheChainOfItsDefinitionAtEveryShape(weights: Precision) {
        for s in Self.shapes {
            let x = Self.values(s.m * s.k, seed: 1), w32 = Self.values(s.k * s.n, seed: 2).map { weights.round($0) }
            let w16 = w32.map(BFloat16.init)
            for isa in KernelISA.supported {
                var y = [Float](repeating: .nan, count: s.m * s.n)
                run(weights, w32, w16) { b in
                    FixedOrderGemm.nn(m: s.m, n: s.n, k: s.k, a: x, lda: s.k, b: b, ldb: s.n, c: &y, ldc: s.n, isa: isa)
                }
                for i in 0..<s.m { for j in 0..<s.n {
                    let want = FixedOrderGemm.referenceNN(row: Array(x[i * s.k ..< (i + 1) * s.k]), column: (0..<s.k).map { w32[$0 * s.n + j] })
                    #expect(y[i * s.n + j].bitPattern == want.bitPattern, "\(s) \(isa) [\(i), \(j)]")
                } }
            }
        }
    }

    @Test(arguments: [Precision.f32, .bf16])
    func ntGivesTheLanesOfItsDefinitionAtEveryShape(weights: Precision) {
        for s in Self.shapes {
            let x = Self.values(s.m * s.k, seed: 3), w32 = Self.values(s.n * s.k, seed: 4).map { weights.round($0) }
            let w16 = w32.map(BFloat16.init)
            for isa in KernelISA.supported {
                var y = [Float](repeating: .nan, count: s.m * s.n)
                run(weights, w32, w16) { b in
                    FixedOrderGemm.nt(m: s.m, n: s.n, k: s.k, a: x, lda: s.k, b: b, ldb: s.k, c: &y, ldc: s.n, isa: isa)
                }
                for i in 0..<s.m { for j in 0..<s.n {
                    let want = FixedOrderGemm.referenceNT(row: Array(x[i * s.k ..< (i + 1) * s.k]), row: Array(w32[j * s.k ..< (j + 1) * s.k]))
                    #expect(y[i * s.n + j].bitPattern == want.bitPattern, "\(s) \(isa) [\(i), \(j)]")
                } }
            }
        }
    }

    /// A row computed alone, among 200 others, or as the continuation of a chain split at any k
    /// gives the same bits: what lets a token's output ignore the batch and the cache's tiles.
    @Test func aRowHasTheSameBitsAloneInABatchAndAcrossSplitChains() {
        let m = 200, n = 300, k = 700
        let x = Self.values(m * k, seed: 5), w = Self.values(k * n, seed: 6)
        var all = [Float](repeating: 0, count: m * n)
        FixedOrderGemm.nn(m: m, n: n, k: k, a: x, lda: k, b: .f32(w), ldb: n, c: &all, ldc: n)
        for i in [0, 7, 199] {
            var alone = [Float](repeating: 0, count: n), split = [Float](repeating: 0, count: n)
            x.withUnsafeBufferPointer { xp in
                FixedOrderGemm.nn(m: 1, n: n, k: k, a: xp.baseAddress! + i * k, lda: k, b: .f32(w), ldb: n, c: &alone, ldc: n)
                w.withUnsafeBufferPointer { wp in
                    FixedOrderGemm.nn(m: 1, n: n, k: 130, a: xp.baseAddress! + i * k, lda: k, b: .f32(wp.baseAddress!), ldb: n, c: &split, ldc: n)
                    FixedOrderGemm.nn(m: 1, n: n, k: k - 130, a: xp.baseAddress! + i * k + 130, lda: k, b: .f32(wp.baseAddress! + 130 * n),
                                      ldb: n, c: &split, ldc: n, accumulate: true)
                }
            }
            #expect(alone.map(\.bitPattern) == all[i * n ..< (i + 1) * n].map(\.bitPattern))
            #expect(split.map(\.bitPattern) == alone.map(\.bitPattern))
        }
    }

    private func run(_ p: Precision, _ w32: [Float], _ w16: [BFloat16], _ body: (GemmSource) -> Void) {
        if p == .f32 { w32.withUnsafeBufferPointer { body(.f32($0.baseAddress!)) } }
        else { w16.withUnsafeBufferPointer { body(.bf16($0.baseAddress!)) } }
    }
}
