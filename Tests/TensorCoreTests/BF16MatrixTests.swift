import Foundation
import Testing
import TensorCore

/// bf16 storage: built from bf16 data as is or by rounding f32 once, two bytes an element,
/// weight-sized storage on huge pages, and `AnyMatrix` holding either precision.
@Suite struct BF16MatrixTests {
    @Test func slicedBF16DataIsKeptBitForBit() {
        let bits: [UInt16] = [0x7FC1, 0x0001, 0xFF80, 0x3F81, 0x8000, 0x1234]
        let m = BF16Matrix(rows: 2, cols: 3) { out in for i in out.indices { out[i] = BFloat16(bitPattern: bits[i]) } }
        #expect(m.storage.map(\.bitPattern) == bits && m.bytes == 12 && m[1, 2].bitPattern == 0x1234)
    }

    @Test func roundingF32RoundsEachElementOnce() throws {
        let values: [Float] = [1.00390625, 1.01171875, -3.3e38, .nan, Float(bitPattern: 0x0001_1234), 0.1]
        let f32 = try Matrix(rows: 3, cols: 2, values: values)
        let b = BF16Matrix(rounding: f32)
        #expect(b.storage.map(\.bitPattern) == values.map { BFloat16($0).bitPattern })
        #expect(b.widened().storage.map(\.bitPattern) == values.map { BFloat16($0).float.bitPattern })
    }

    /// The block filler hands out every row exactly once, in blocks no larger than asked, and
    /// rounds what it was given.
    @Test func roundingRowsVisitsEveryRowOnceInBoundedBlocks() {
        for (rows, cols, blockBytes) in [(10, 3, 24), (10, 3, 1), (7, 1000, 1 << 20), (0, 5, 64)] {
            var seen: [Int] = []
            let m = BF16Matrix(rows: rows, cols: cols, blockBytes: blockBytes) { range, block in
                #expect(block.count == range.count * cols && range.count * cols * 4 <= max(blockBytes, cols * 4))
                seen += range
                for (r, row) in range.enumerated() { for j in 0..<cols { block[r * cols + j] = Float(row) + Float(j) / 1024 } }
            }
            #expect(seen == Array(0..<rows))
            #expect((0..<rows).allSatisfy { i in (0..<cols).allSatisfy { j in m[i, j] == BFloat16(Float(i) + Float(j) / 1024) } })
        }
    }

    @Test func storeRoundsIntoPlaceAndChecksTheShape() throws {
        var b = BF16Matrix(rows: 1, cols: 3)
        try b.round(from: try Matrix(rows: 1, cols: 3, values: [1.00390625, 2, 3]))
        #expect(b.storage.map(\.float) == [1, 2, 3])
        #expect(throws: ShapeError.self) { try b.round(from: Matrix(rows: 3, cols: 1)) }
        #expect(throws: ShapeError.self) { try BF16Matrix(rows: 2, cols: 2, values: [BFloat16(1)]) }
    }

    @Test func transposeSwapsEveryIndex() {
        let m = BF16Matrix(rows: 70, cols: 130) { out in for i in out.indices { out[i] = BFloat16(bitPattern: UInt16(i)) } }
        let t = m.transposed()
        #expect(t.shape == [130, 70] && (0..<70).allSatisfy { i in (0..<130).allSatisfy { j in t[j, i] == m[i, j] } })
    }

    @Test func weightSizedBF16MatrixIsAdvisedOntoHugePages() throws {
        guard FileManager.default.fileExists(atPath: "/sys/kernel/mm/transparent_hugepage/enabled") else { return }
        let m = BF16Matrix(rows: 4096, cols: 1024) { out in for i in out.indices { out[i] = BFloat16(1) } }     // 8 MiB
        let middle = m.storage.withUnsafeBufferPointer { Int(bitPattern: $0.baseAddress!) + $0.count }
        let flags = try #require(withExtendedLifetime(m) { MatrixStorageTests.vmFlags(at: middle) })
        #expect(flags.contains("hg"), "VmFlags \(flags)")
    }

    @Test func anyMatrixHoldsEitherPrecisionAtItsSize() throws {
        let f = try Matrix(rows: 2, cols: 3, values: [1, 2, 3, 4, 5, 1.00390625])
        let asF32 = AnyMatrix(f, storedAs: .f32), asBF16 = AnyMatrix(f, storedAs: .bf16)
        #expect(asF32.precision == .f32 && asF32.bytes == 24 && asF32.widened() == f)
        #expect(asBF16.precision == .bf16 && asBF16.bytes == 12 && asBF16.shape == [2, 3])
        #expect(asBF16.widened().storage == [1, 2, 3, 4, 5, 1])
        #expect(asBF16.transposed().widened() == asBF16.widened().transposed())
    }

    /// A layer's product on `AnyMatrix` weights: x · Wᵀ and x · W in either precision, into either precision,
    /// with the shapes checked.
    @Test func layerProductsDispatchOnTheWeightsPrecision() throws {
        let x = try Matrix(rows: 2, cols: 3, values: [1, 2, 3, -1, 0.5, 2])
        let w = try Matrix(rows: 4, cols: 3, values: [1, 0, 0, 0, 1, 0, 0, 0, 1, 1.00390625, 1, 1])   // [out, in]
        let exact = try Gemm.linear(x, weight: w)
        for precision in Precision.allCases {
            let weight = AnyMatrix(w, storedAs: precision), weightNN = AnyMatrix(w.transposed(), storedAs: precision)
            var y = Matrix(rows: 2, cols: 4), yNN = AnyMatrix.bf16(BF16Matrix(rows: 2, cols: 4))
            let kernel = try Gemm.linear(x, weight: weight, into: &y)
            try Gemm.linearNN(AnyMatrix(x, storedAs: .bf16), weight: weightNN, into: &yNN)
            let expected = precision == .f32 ? exact : try Gemm.linear(x, weight: weight.widened())
            #expect(y == expected, "\(precision) via \(kernel)")
            #expect(yNN.widened() == BF16Matrix(rounding: expected).widened())
            if precision == .bf16 {
                #expect(kernel == .bf16Rows(.best))
            } else if case .oneDNN = kernel {
                #expect(OneDNN.hasAVX512Core)     // f32 [out, in] at two rows: oneDNN where it was measured faster
            } else {
                #expect(kernel == .openBLAS("sgemm") && !OneDNN.hasAVX512Core)
            }
            #expect(throws: ShapeError.self) { try Gemm.linear(x, weight: weightNN, into: &y) }
            #expect(throws: ShapeError.self) { try Gemm.linearNN(x, weight: weight, into: &yNN) }
        }
    }
}
