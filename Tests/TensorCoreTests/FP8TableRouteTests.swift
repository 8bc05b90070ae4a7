import Testing
import TensorCore

/// The fp8 kernels' table route: 32 columns of plain codes (no zero, subnormal or NaN) inside one
/// 128-column scale tile are dequantized through an eight-entry table per row rather than one
/// multiply and rounding per element. Checked against a bf16 weight built element by element here
/// (bf16(e4m3 × scale) in Swift), on DeepSeek's 128 blocks with shard offsets, with codes that
/// send some blocks down each route and scales on both sides of the table's range.
@Suite struct FP8TableRouteTests {
    /// Rows × cols of a tensor with 128 × 128 scale tiles. Codes are plain, except one in `rare`
    /// (about 1 in 200) that is a zero or a subnormal, so most 32-column blocks are plain and some
    /// are not. Scales carry many significant bits; tile column 1's lie below the table's range
    /// (about 2^-125, where products are subnormal f32) and tile column 2's above it: about 2^101,
    /// or with `overflow` about 2^119, where the largest codes' products pass bf16's largest finite
    /// value (element by element only: in a row product, the infinities of both signs make every
    /// row that crosses the tile NaN on both sides, and NaN would hide any other difference).
    static func weight(rows: Range<Int>, cols: Range<Int>, rare: Int = 200, overflow: Bool = false) -> FP8BlockMatrix {
        let b = 128
        let tr = FP8BlockMatrix.tiles(first: rows.lowerBound, count: rows.count, blockSize: b)
        let tc = FP8BlockMatrix.tiles(first: cols.lowerBound, count: cols.count, blockSize: b)
        var state: UInt64 = 0x2545_F491_4F6C_DD1D
        let values = (0..<rows.count * cols.count).map { _ -> UInt8 in
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            let sign = UInt8(state >> 63) << 7, mantissa = UInt8((state >> 8) & 7)
            if state % UInt64(rare) == 0 { return sign | mantissa }                      // exponent 0: zero or subnormal
            let exponent = UInt8(1 + (state >> 16) % 15)
            return sign | (exponent == 15 && mantissa == 7 ? 0x7e : exponent << 3 | mantissa)   // no NaN
        }
        let scales = (0..<tr.count * tc.count).map { i -> Float in
            let base = (0.37 + Float(i % 7) * 0.113) * 0x1p-5
            switch tc.lowerBound + i % tc.count { case 1: return base * 0x1p-120; case 2: return base * (overflow ? 0x1p125 : 0x1p107); default: return base }
        }
        return FP8BlockMatrix(rows: rows.count, cols: cols.count, blockSize: b, values: values, scales: scales, scaleCols: tc.count,
                              rowOffset: rows.lowerBound % b, columnOffset: cols.lowerBound % b)
    }

    /// bf16(e4m3 × scale) for every element, from the Swift dequantization (`dequantizedF32`,
    /// one element at a time, no kernel) rounded here.
    static func reference(_ w: FP8BlockMatrix) -> [BFloat16] { w.dequantizedF32().storage.map { BFloat16($0) } }

    /// The fp8 row kernel's products and the bf16 row kernel's on `weight`, with x zero outside the
    /// columns whose scale tile column `tiles` holds (every column when nil).
    static func rowProducts(_ w: FP8BlockMatrix, weight: [BFloat16], m: Int, isa: KernelISA,
                            tiles: ((Int) -> Bool)? = nil) -> (got: [Float], want: [Float]) {
        var x = BF16.round(BF16GemmTests.values(m * w.cols, 5)).map(\.float)
        if let tiles {
            for i in x.indices where !tiles((w.columnOffset + i % w.cols) / w.blockSize) { x[i] = 0 }
        }
        var want = [Float](repeating: .nan, count: m * w.rows), got = want
        x.withUnsafeBufferPointer { xp in
            weight.withUnsafeBufferPointer { wp in want.withUnsafeMutableBufferPointer { yp in
                RowKernel.run(transB: true, m: m, n: w.rows, k: w.cols, x: xp.baseAddress!, ldx: w.cols, w: wp.baseAddress!, ldw: w.cols,
                              y: yp.baseAddress!, ldy: w.rows, isa: isa)
            } }
            got.withUnsafeMutableBufferPointer { yp in w.rowProduct(xp.baseAddress!, m: m, into: yp.baseAddress!, isa: isa) }
        }
        return (got, want)
    }

    /// Each row kernel against the bf16 one three times: on every column but the two tiles whose
    /// scales lie outside the table's range (in a row sum, tile 2's products, about 2^101, would
    /// swamp every other tile's, and tile 1's, about 2^-125, vanish beside them), then on each of
    /// those two alone. `rare` 5000 leaves most 64-column blocks of eight rows plain (AVX-512 takes
    /// 64 columns at a time, so at 1 in 200 most of its blocks hold a zero or a subnormal).
    @Test(arguments: [(0..<8, 0..<256, 200), (3..<140, 37..<400, 200), (120..<137, 100..<300, 200), (0..<17, 5..<133, 200),
                      (0..<16, 0..<1024, 200), (0..<16, 0..<1024, 5000), (5..<30, 64..<1000, 5000)])
    func rowKernelGivesTheBitsOfTheBF16KernelOnValuesDequantizedOneByOne(rows: Range<Int>, cols: Range<Int>, rare: Int) {
        let w = Self.weight(rows: rows, cols: cols, rare: rare)
        let weight = Self.reference(w)
        let windows: [(String, (Int) -> Bool)] = [("tiles in range", { $0 != 1 && $0 != 2 }), ("tile 1", { $0 == 1 }), ("tile 2", { $0 == 2 })]
        for isa in KernelISA.supported {
            for m in [1, 2, 3, 4, 5, 9] {
                for (name, tiles) in windows {
                    let (got, want) = Self.rowProducts(w, weight: weight, m: m, isa: isa, tiles: tiles)
                    let differing = zip(got, want).filter { $0.bitPattern != $1.bitPattern }.count
                    #expect(differing == 0 && !got.contains { !$0.isFinite },
                            "\(isa) m=\(m) rows \(rows) cols \(cols) rare \(rare), \(name): \(differing) of \(got.count) differ")
                }
            }
        }
    }

    /// Both dequantizations the prefill route uses (bf16 tiles, and f32 blocks for the widened fallback).
    static func dequantizedBothWays(_ w: FP8BlockMatrix, isa: KernelISA) -> (bf16: [BFloat16], f32: [Float]) {
        var f32 = [Float](repeating: .nan, count: w.rows * w.cols)
        var bf16 = [BFloat16](repeating: BFloat16(Float.nan), count: w.rows * w.cols)
        f32.withUnsafeMutableBufferPointer { w.dequantize(rows: 0, count: w.rows, into: $0.baseAddress!, ldd: w.cols, isa: isa) }
        bf16.withUnsafeMutableBufferPointer { w.dequantize(rows: 0, count: w.rows, into: $0.baseAddress!, ldd: w.cols, isa: isa) }
        return (bf16, f32)
    }

    /// At every instruction set, on blocks of each route (1 in 200 and 1 in 5000 codes rare), with
    /// products past bf16's largest finite value in tile column 2.
    @Test(arguments: [(3..<140, 37..<400, 200), (0..<16, 0..<1024, 5000), (5..<30, 64..<1000, 5000)])
    func dequantizationGivesEachCodeTimesItsTileScaleInBF16(rows: Range<Int>, cols: Range<Int>, rare: Int) {
        let w = Self.weight(rows: rows, cols: cols, rare: rare, overflow: true)
        let want = Self.reference(w)
        for isa in KernelISA.supported {
            let (bf16, f32) = Self.dequantizedBothWays(w, isa: isa)
            let wrongBF16 = zip(bf16, want).filter { $0.bitPattern != $1.bitPattern }.count
            let wrongF32 = zip(f32, want).filter { $0.bitPattern != $1.float.bitPattern }.count
            #expect(wrongBF16 == 0 && wrongF32 == 0, "\(isa): \(wrongBF16) bf16 and \(wrongF32) f32 values of \(want.count) differ")
        }
    }

    /// A NaN code inside an otherwise plain block is not taken through the table (which has no
    /// NaN): its row's output is NaN on every route and instruction set, the other rows' are not.
    @Test func aNaNCodeInAPlainBlockMakesItsRowNaN() {
        let plain = Self.weight(rows: 0..<16, cols: 0..<256, rare: Int.max)
        var values = plain.values
        values[5 * 256 + 40] = 0xff
        let w = FP8BlockMatrix(rows: 16, cols: 256, blockSize: 128, values: values, scales: plain.scales, scaleCols: plain.scaleCols,
                               rowOffset: 0, columnOffset: 0)
        let weight = Self.reference(w)
        for isa in KernelISA.supported {
            for m in [1, 2] {
                let (got, _) = Self.rowProducts(w, weight: weight, m: m, isa: isa)
                for i in 0..<m {
                    #expect((0..<16).filter { got[i * 16 + $0].isNaN } == [5], "\(isa) m=\(m) row \(i)")
                }
            }
        }
        for isa in KernelISA.supported {
            let (bf16, f32) = Self.dequantizedBothWays(w, isa: isa)
            #expect(f32.indices.filter { f32[$0].isNaN } == [5 * 256 + 40] && bf16.indices.filter { bf16[$0].float.isNaN } == [5 * 256 + 40],
                    "\(isa)")
        }
    }
}
