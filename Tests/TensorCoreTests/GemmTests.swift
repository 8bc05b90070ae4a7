import Testing
import TensorCore
import TestSupport

@Suite struct GemmTests {
    @Test func matmulMatchesHandComputedProduct() throws {
        let a = try Matrix(rows: 2, cols: 3, values: [1, 2, 3, 4, 5, 6])
        let b = try Matrix(rows: 3, cols: 2, values: [7, 8, 9, 10, 11, 12])
        let c = try Gemm.matmul(a, b)
        #expect(c.shape == [2, 2])
        #expect(c.storage == [58, 64, 139, 154])
    }

    @Test func linearComputesXTimesWTransposedForPyTorchLayout() throws {
        // W is [out=2, in=3] as PyTorch stores it; y = x · Wᵀ.
        let x = try Matrix(rows: 1, cols: 3, values: [1, 2, 3])
        let w = try Matrix(rows: 2, cols: 3, values: [1, 0, -1, 2, 1, 0])
        let y = try Gemm.linear(x, weight: w)
        #expect(y.storage == [-2, 4])
    }

    @Test func linearAccumulatesWhenAsked() throws {
        let x = try Matrix(rows: 1, cols: 2, values: [1, 1])
        let w = try Matrix(rows: 1, cols: 2, values: [2, 3])
        var y = try Matrix(rows: 1, cols: 1, values: [10])
        try Gemm.linear(x, weight: w, into: &y, accumulate: true)
        #expect(y.storage == [15])
    }

    @Test func stridedGemmReadsAViewWithoutCopying() throws {
        // A 2×4 matrix; use its columns 1..<3 as a 2×2 view (lda = 4).
        let a: [Float] = [0, 1, 2, 0, 0, 3, 4, 0]
        let b: [Float] = [1, 0, 0, 1]
        var c = [Float](repeating: 0, count: 4)
        a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in c.withUnsafeMutableBufferPointer { cp in
            Gemm.run(m: 2, n: 2, k: 2, a: ap.baseAddress! + 1, lda: 4, b: bp.baseAddress!, ldb: 2, c: cp.baseAddress!, ldc: 2)
        } } }
        #expect(c == [1, 2, 3, 4])
    }

    @Test func shapeMismatchThrowsAndNamesBothShapes() throws {
        let x = Matrix(rows: 2, cols: 3)
        let w = Matrix(rows: 4, cols: 5)
        #expect(throws: ShapeError.self) { try Gemm.linear(x, weight: w) }
        do { _ = try Gemm.linear(x, weight: w); Issue.record("expected a throw") } catch {
            #expect("\(error)".contains("[2, 3]") && "\(error)".contains("[4, 5]"))
        }
        #expect(throws: ShapeError.self) { try Gemm.matmul(Matrix(rows: 2, cols: 3), Matrix(rows: 2, cols: 3)) }
    }

    @Test func emptyBatchGivesEmptyOutput() throws {
        let y = try Gemm.linear(Matrix(rows: 0, cols: 3), weight: Matrix(rows: 4, cols: 3))
        #expect(y.shape == [0, 4])
    }
}

@Suite struct ElementwiseTests {
    @Test func biasIsAddedToEveryRow() throws {
        var m = try Matrix(rows: 2, cols: 2, values: [1, 2, 3, 4])
        try m.addRowBias([10, 20])
        #expect(m.storage == [11, 22, 13, 24])
        #expect(throws: ShapeError.self) { try m.addRowBias([1, 2, 3]) }
    }

    @Test func multiplyIsElementwiseAndChecksShapes() throws {
        var m = try Matrix(rows: 1, cols: 3, values: [1, 2, 3])
        try m.multiply(by: try Matrix(rows: 1, cols: 3, values: [2, 0.5, -1]))
        #expect(m.storage == [2, 1, -3])
        do { try m.multiply(by: Matrix(rows: 1, cols: 2)); Issue.record("expected a throw") } catch {
            #expect("\(error)".contains("[1, 3]") && "\(error)".contains("[1, 2]"))
        }
    }

    @Test func activationsMatchTheirDefinitions() throws {
        var m = try Matrix(rows: 1, cols: 3, values: [0, 2, -1])
        m.sigmoid()
        #expect(isClose(m[0, 0], 0.5) && isClose(m[0, 1], 0.880797) && isClose(m[0, 2], 0.268941))
        var s = try Matrix(rows: 1, cols: 3, values: [0, 1, -3])
        s.softsign()
        #expect(s.storage == [0, 0.5, -0.75])
        #expect(Activation.scaledSoftsign(1) == 1 && Activation.scaledSoftsign(-3) == -1.5)
    }

    @Test func rmsNormDividesByRootMeanSquareAndScales() throws {
        var m = try Matrix(rows: 1, cols: 2, values: [3, 4])   // mean square 12.5
        try m.rmsNormRows(weight: [1, 2], eps: 0)
        let rms = Float(12.5).squareRoot()
        #expect(isClose(m[0, 0], 3 / rms) && isClose(m[0, 1], 8 / rms))
        #expect(throws: ShapeError.self) { try m.rmsNormRows(weight: [1], eps: 0) }
    }

    @Test func softmaxRowsSumToOneAndAreStableForLargeInputs() throws {
        var m = try Matrix(rows: 2, cols: 3, values: [1, 2, 3, 1000, 1000, 1000])
        m.softmaxRows()
        #expect(isClose(m[0, 2], 0.665241) && isClose(m[0, 0], 0.090031))
        #expect(m.storage[3...].allSatisfy { isClose($0, 1.0 / 3) })
    }

    @Test func comparisonReportsRelativeErrorAgainstTheReferenceScale() throws {
        let ref = try Matrix(rows: 1, cols: 2, values: [2, -4])
        let got = try Matrix(rows: 1, cols: 2, values: [2, -3.996])
        let c = try Comparison(got, reference: ref)
        #expect(isClose(c.maxAbsDiff, 0.004, rtol: 1e-3) && isClose(c.relative, 0.001, rtol: 1e-3))
        var nan = got
        nan[0, 0] = .nan
        #expect(try Comparison(nan, reference: ref).relative == .infinity)
    }
}
