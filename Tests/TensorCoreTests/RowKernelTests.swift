import Testing
import TensorCore

/// The bf16 weight-streaming row kernel at every instruction-set level this CPU runs, on every
/// tail length: k past the 16- or 8-lane loops and the eight-row blocks, n past the four-row
/// tiles and the 16-column pieces, m past the row groups.
@Suite struct RowKernelTests {
    static func check(isa: KernelISA, transB: Bool, m: Int, n: Int, k: Int, alpha: Float, beta: Float) -> Bool {
        let ldx = k + 1, ldw = (transB ? k : n) + 2, ldy = n + 3
        let x = BF16GemmTests.values(m * ldx, 5)
        let w = BF16.round(BF16GemmTests.values((transB ? n : k) * ldw, 6))
        let y0 = BF16GemmTests.values(m * ldy, 7).map { beta == 0 ? Float.nan : $0 }
        var y = y0
        x.withUnsafeBufferPointer { xp in w.withUnsafeBufferPointer { wp in y.withUnsafeMutableBufferPointer { yp in
            RowKernel.run(transB: transB, m: m, n: n, k: k, alpha: alpha, x: xp.baseAddress!, ldx: ldx,
                          w: wp.baseAddress!, ldw: ldw, beta: beta, y: yp.baseAddress!, ldy: ldy, isa: isa)
        } } }
        var ok = true
        for i in 0..<m {
            for j in 0..<ldy {
                let got = Double(y[i * ldy + j])
                guard j < n else { ok = ok && y[i * ldy + j].bitPattern == y0[i * ldy + j].bitPattern; continue }
                var sum = 0.0, magnitude = 0.0
                for p in 0..<k {
                    let term = Double(x[i * ldx + p]) * Double(w[transB ? j * ldw + p : p * ldw + j].float)
                    sum += term
                    magnitude += abs(term)
                }
                let old = beta == 0 ? 0 : Double(beta) * Double(y0[i * ldy + j])
                let want = Double(alpha) * sum + old
                let tolerance = Double(k + 2) * 0x1p-24 * (abs(Double(alpha)) * magnitude + abs(old)) + 1e-30
                if !(abs(got - want) <= tolerance) {
                    Issue.record("\(isa) transB=\(transB) m=\(m) n=\(n) k=\(k) [\(i), \(j)]: \(got) vs \(want) ± \(tolerance)")
                    ok = false
                }
            }
        }
        return ok
    }

    @Test(arguments: KernelISA.supported, [true, false])
    func everyTailLengthMatchesTheReference(isa: KernelISA, transB: Bool) {
        for k in 0...40 {
            for n in Array(1...20) + [31, 33, 35] {
                for m in [1, 2, 3, 4, 5, 9] {
                    if !Self.check(isa: isa, transB: transB, m: m, n: n, k: k, alpha: 1, beta: 0) { return }
                }
            }
        }
    }

    @Test(arguments: KernelISA.supported, [true, false])
    func alphaAndBetaScaleAndAccumulate(isa: KernelISA, transB: Bool) {
        for (alpha, beta) in [(Float(0.5), Float(1)), (Float(-2), Float(0.25)), (Float(1), Float(0))] {
            for m in [1, 3] {   // one row has its own loop (eight weight rows at a time)
                #expect(Self.check(isa: isa, transB: transB, m: m, n: 37, k: 45, alpha: alpha, beta: beta))
            }
        }
    }

    /// Decode-sized products (one row, long k) at every level.
    @Test(arguments: KernelISA.supported, [true, false])
    func oneRowAtModelWidths(isa: KernelISA, transB: Bool) {
        #expect(Self.check(isa: isa, transB: transB, m: 1, n: 67, k: 2048 + 13, alpha: 1, beta: 0))
    }

    /// A decode of one sequence gives the bits that sequence gets in a batch, wherever it sits
    /// in it: the one-row loop (eight weight rows at a time, prefetching short rows), the tiles of
    /// four x rows and those of two sum each output alike. Batches that fill the four-row groups,
    /// leave a pair or a single row; widths on both sides of the prefetch's 2 KB row limit.
    @Test(arguments: KernelISA.supported, [true, false])
    func oneRowGivesTheBitsOfThatRowInABatch(isa: KernelISA, transB: Bool) {
        for k in [0, 3, 8, 45, 1024 + 3, 2048 + 13] {
            for n in [1, 7, 8, 9, 16, 17, 67] {
                for m in [2, 3, 4, 5, 7, 9] {
                    let x = BF16GemmTests.values(m * k, 5), w = BF16.round(BF16GemmTests.values(n * k, 6))
                    var batch = [Float](repeating: .nan, count: m * n), one = batch
                    x.withUnsafeBufferPointer { xp in w.withUnsafeBufferPointer { wp in
                        batch.withUnsafeMutableBufferPointer { yp in
                            RowKernel.run(transB: transB, m: m, n: n, k: k, x: xp.baseAddress!, ldx: k, w: wp.baseAddress!,
                                          ldw: transB ? k : n, y: yp.baseAddress!, ldy: n, isa: isa)
                        }
                        one.withUnsafeMutableBufferPointer { yp in
                            for i in 0..<m {
                                RowKernel.run(transB: transB, m: 1, n: n, k: k, x: xp.baseAddress! + i * k, ldx: k, w: wp.baseAddress!,
                                              ldw: transB ? k : n, y: yp.baseAddress! + i * n, ldy: n, isa: isa)
                            }
                        }
                    } }
                    let differing = zip(one, batch).filter { $0.bitPattern != $1.bitPattern }.count
                    #expect(differing == 0, "\(isa) transB=\(transB) m=\(m) n=\(n) k=\(k): \(differing) differ")
                }
            }
        }
    }
}

