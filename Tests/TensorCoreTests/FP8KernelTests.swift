import Testing
import TensorCore

/// fp8 e4m3 with block scales: the encoding, and the two product routes against the bf16 kernels
/// on the dequantized weight — bit for bit, at every instruction set this CPU runs, with blocks
/// whose edges fall inside a tile.
@Suite struct FP8KernelTests {
    /// Every e4m3 value, in order of magnitude (codes 0…0x7e are increasing).
    static let finite: [Float] = (0...0x7e).map { FP8Quantization.decode(UInt8($0)) }

    /// The nearest e4m3 value to v by search, ties to the even code, saturating at ±448.
    static func nearest(_ v: Float) -> UInt8 {
        let a = abs(v), sign: UInt8 = v.sign == .minus ? 0x80 : 0
        if a >= 448 { return sign | 0x7e }
        var best = 0
        for c in 1...0x7e where abs(finite[c] - a) < abs(finite[best] - a) || (abs(finite[c] - a) == abs(finite[best] - a) && c % 2 == 0) { best = c }
        return sign | UInt8(best)
    }

    @Test func encodingRoundsToTheNearestValueTiesToEvenAndSaturates() {
        var values: [Float] = [0, -0, 448, 464, 480, 1e6, -1e6, 0x1p-9, 0x1p-10, 3 * 0x1p-10, 0x1p-6, 0x1.1p-6, 1.0625, 1.1875, 240, 248, 256]
        var g = SystemRandomNumberGenerator()
        for _ in 0..<4000 { values.append(Float.random(in: -500...500, using: &g) * (Bool.random(using: &g) ? 1 : 0x1p-8)) }
        for c in 0...0x7e { values.append(Self.finite[c]); if c < 0x7e { values.append((Self.finite[c] + Self.finite[c + 1]) / 2) } }
        for v in values {
            let got = FP8Quantization.encode(v)
            let want = Self.nearest(v)
            #expect(got == want || (v == 0 && got & 0x7f == 0), "e4m3(\(v)) = 0x\(String(got, radix: 16)), nearest is 0x\(String(want, radix: 16))")
        }
        #expect(FP8Quantization.encode(.nan) & 0x7f == 0x7f && FP8Quantization.decode(0x7f).isNaN && FP8Quantization.decode(0xff).isNaN)
        for c in 0...0x7e { #expect(FP8Quantization.encode(FP8Quantization.decode(UInt8(c))) == UInt8(c)) }
    }

    /// A block of a [rowsG, colsG] tensor, rows `rows`, cols `cols`, with tile scales of every tile they touch.
    static func block(rows: Range<Int>, cols: Range<Int>, seed: UInt8 = 3) -> FP8BlockMatrix {
        let b = 16
        let tr = FP8BlockMatrix.tiles(first: rows.lowerBound, count: rows.count, blockSize: b)
        let tc = FP8BlockMatrix.tiles(first: cols.lowerBound, count: cols.count, blockSize: b)
        let values = (0..<rows.count * cols.count).map { i -> UInt8 in
            let v = UInt8(truncatingIfNeeded: i &* 37 &+ Int(seed) &* 11)
            return v & 0x7f == 0x7f ? v ^ 1 : v                                   // no NaN
        }
        let scales = (0..<tr.count * tc.count).map { (0.37 + Float($0 % 7) * 0.113) * 0x1p-5 }   // many significant bits: products round
        return FP8BlockMatrix(rows: rows.count, cols: cols.count, blockSize: b, values: values, scales: scales, scaleCols: tc.count,
                              rowOffset: rows.lowerBound % b, columnOffset: cols.lowerBound % b)
    }

    @Test(arguments: [(0..<8, 0..<16), (5..<26, 3..<40), (13..<14, 9..<58), (16..<37, 7..<37), (1..<40, 0..<77)])
    func rowKernelGivesTheBitsOfTheBF16RowKernelOnTheDequantizedWeight(rows: Range<Int>, cols: Range<Int>) {
        let w = Self.block(rows: rows, cols: cols)
        let bf16 = w.dequantized()
        for isa in KernelISA.supported {
            for m in [1, 2, 3, 5] {
                let x = BF16.round(BF16GemmTests.values(m * w.cols, 9)).map(\.float)
                var want = [Float](repeating: .nan, count: m * w.rows), got = want
                x.withUnsafeBufferPointer { xp in
                    bf16.storage.withUnsafeBufferPointer { wp in want.withUnsafeMutableBufferPointer { yp in
                        RowKernel.run(transB: true, m: m, n: w.rows, k: w.cols, x: xp.baseAddress!, ldx: w.cols, w: wp.baseAddress!, ldw: w.cols,
                                      y: yp.baseAddress!, ldy: w.rows, isa: isa)
                    } }
                    got.withUnsafeMutableBufferPointer { yp in w.rowProduct(xp.baseAddress!, m: m, into: yp.baseAddress!, isa: isa) }
                }
                #expect(got.map(\.bitPattern) == want.map(\.bitPattern), "\(isa) m=\(m) rows \(rows) cols \(cols)")
            }
        }
    }

    @Test func dequantizedValuesAreTheCodeTimesItsTileScale() {
        let w = Self.block(rows: 5..<26, cols: 3..<40)
        var rounded = 0
        let f32 = w.dequantizedF32(), bf16 = w.dequantized()
        for r in 0..<w.rows {
            for c in 0..<w.cols {
                let scale = w.scales[((5 % 16 + r) / 16) * w.scaleCols + (3 % 16 + c) / 16]
                let v = FP8Quantization.decode(w.values[r * w.cols + c]) * scale
                #expect(f32[r, c].bitPattern == v.bitPattern && bf16.storage[r * w.cols + c] == BFloat16(v))
                if BFloat16(v).float != v { rounded += 1 }
            }
        }
        #expect(rounded > w.rows * w.cols / 2, "the scales make most products round to bf16: \(rounded)")
    }

    /// A tile of the prefill route is whole tiles of the block grid within its bytes (one block
    /// of rows at least, the whole matrix at most), and rows dequantized alone are those rows of
    /// the whole dequantization: what bench's fp8 reference multiplies instead of a whole copy.
    @Test func aTileIsWholeBlocksOfRowsWithinItsBytesAndDequantizesThoseRows() {
        let w = Self.block(rows: 3..<99, cols: 5..<69)                 // 96 × 64, blocks of 16
        for (bytes, rows) in [(1, 16), (2 * 64 * 31, 16), (2 * 64 * 32, 32), (2 * 64 * 47, 32), (1 << 20, 96)] {
            #expect(w.tileRows(tileBytes: bytes) == rows, "\(bytes) bytes")
        }
        let whole = w.dequantized()
        for range in [0..<16, 0..<96, 32..<53] {
            let part = w.dequantized(rows: range)
            #expect(part.rows == range.count && part.cols == w.cols)
            #expect(part.storage == Array(whole.storage[(range.lowerBound * w.cols)..<(range.upperBound * w.cols)]), "rows \(range)")
        }
    }

    /// Above the row kernel's bound: where oneDNN's bf16 is not native, the widened fallback's
    /// blocks are filled from fp8, so the bits are the bf16 GEMM's on the dequantized weight
    /// whatever the tile size; where it is native, each tile goes to oneDNN, and where oneDNN runs
    /// the tile on the implementation it runs the whole weight on (each tile written densely, so
    /// that it keeps its brgemm matmul), the bits are the whole-weight product's too; otherwise
    /// they agree up to f32 summation order.
    @Test(arguments: [64, 80])
    func tiledRouteGivesTheBitsOfTheBF16GemmOnTheDequantizedWeight(m: Int) throws {
        let w = Self.block(rows: 3..<99, cols: 5..<69)
        let x = try Matrix(rows: m, cols: w.cols, values: BF16.round(BF16GemmTests.values(m * w.cols, 4)).map(\.float))
        var want = Matrix(rows: m, cols: w.rows)
        let whole = try Gemm.linear(x, weight: AnyMatrix.bf16(w.dequantized()), into: &want)
        for tileBytes in [1, 2 * 16 * w.cols * 2, 1 << 20] {
            var got = Matrix(rows: m, cols: w.rows)
            let kernel = try w.product(x, into: &got, tileBytes: tileBytes)
            let differing = zip(got.storage, want.storage).filter { $0.bitPattern != $1.bitPattern }.count
            let close = try Comparison(got, reference: want).relative < 1e-6
            let sameImplementation = "\(kernel)".hasSuffix("then \(whole)")
            #expect(OneDNN.bf16Support == .native && !sameImplementation ? close : differing == 0, "tile bytes \(tileBytes): \(differing) of \(got.count) differ, max |Δ| \(zip(got.storage, want.storage).map { abs($0 - $1) }.max() ?? 0): \(kernel)")
            #expect("\(kernel)".hasPrefix("fp8 dequantized per tile"))
            if OneDNN.bf16Support == .native { #expect(sameImplementation, "\(kernel) against \(whole)") }
        }
        var one = Matrix(rows: 1, cols: w.rows)
        #expect("\(try w.product(Matrix(rows: 1, cols: w.cols), into: &one))".hasPrefix("fp8 row kernel"))
    }
}
