import Testing
import TensorCore
import TestSupport

/// Which kernel serves a bf16 product, what it reports, and the state behind it: primitives made
/// once per shape, oneDNN's refusals remembered, the fallback's bounded blocks.
@Suite struct BF16GemmRoutingTests {
    typealias Case = BF16GemmTests.Case

    @Test func eachRouteReportsItsKernel() {
        let big = Case(m: 40, n: 40, k: 33), small = Case(m: 2, n: 40, k: 33), batch = Case(m: 12, n: 40, k: 33)
        #expect(BF16GemmTests.check(small, route: .automatic) == .bf16Rows(KernelISA.best))
        // Twelve rows: the row kernel unless oneDNN's bf16 is native (then oneDNN).
        let twelve = BF16GemmTests.check(batch, route: .automatic)
        if OneDNN.bf16Support == .native {
            guard case .oneDNN = twelve else { Issue.record("\(twelve)"); return }
        } else {
            #expect(twelve == .bf16Rows(KernelISA.best))
        }
        #expect(BF16GemmTests.check(big, route: .rows) == .bf16Rows(KernelISA.best))
        guard case .widened("sgemm", let reason) = BF16GemmTests.check(big, route: .openBLAS) else {
            Issue.record("the widened route did not report the fallback")
            return
        }
        #expect(reason == "asked for")
        #expect(BF16GemmTests.check(big, route: .openBLAS).description.hasPrefix("fallback: bf16 widened to f32, OpenBLAS sgemm"))

        let viaOneDNN = BF16GemmTests.check(big, route: .oneDNN)
        let automatic = BF16GemmTests.check(big, route: .automatic)
        switch OneDNN.bf16Support {
        case .native:
            guard case .oneDNN(let name) = viaOneDNN, !name.isEmpty else { Issue.record("\(viaOneDNN)"); return }
            #expect(automatic == viaOneDNN)
        case .emulated:     // oneDNN serves it when asked; automatic prefers widening (measured faster)
            guard case .oneDNN(let name) = viaOneDNN, !name.isEmpty else { Issue.record("\(viaOneDNN)"); return }
            guard case .widened(_, let why) = automatic else { Issue.record("\(automatic)"); return }
            #expect(why.contains("emulated"))
        case .unavailable:  // oneDNN refuses: the fallback says so
            guard case .widened(_, let why) = viaOneDNN else { Issue.record("\(viaOneDNN)"); return }
            #expect(why.contains("unimplemented"))
            guard case .widened = automatic else { Issue.record("\(automatic)"); return }
        }
    }

    @Test(arguments: GemmRoute.allCases)
    func emptyInnerDimensionScalesC(route: GemmRoute) {
        for cBF16 in [false, true] {
            for (beta, m) in [(Float(0), 1), (Float(0), 12), (Float(1), 3), (Float(-0.5), 12)] {
                let kernel = BF16GemmTests.check(Case(m: m, n: 7, k: 0, aBF16: true, cBF16: cBF16, beta: beta, pad: 1), route: route)
                #expect(kernel == .empty)
            }
        }
    }

    @Test func aPrimitiveIsMadeOncePerShape() {
        let context = GemmContext()
        let shape = Case(m: 12, n: 24, k: 40)
        BF16GemmTests.check(shape, route: .oneDNN, context: context)
        guard OneDNN.bf16Support != .unavailable else {
            #expect(context.primitivesCreated == 0 && context.oneDNNFailures.count == 1)
            #expect(context.oneDNNFailures.values.allSatisfy { $0.isUnimplemented })
            BF16GemmTests.check(shape, route: .oneDNN, context: context)
            #expect(context.oneDNNFailures.count == 1)
            return
        }
        #expect(context.primitivesCreated == 1)
        BF16GemmTests.check(shape, route: .oneDNN, context: context)
        #expect(context.primitivesCreated == 1)                    // the same key: reused
        BF16GemmTests.check(Case(m: 12, n: 24, k: 40, pad: 2), route: .oneDNN, context: context)
        #expect(context.primitivesCreated == 2)                    // other leading dimensions: another primitive
        BF16GemmTests.check(Case(m: 12, n: 24, k: 40, beta: 1), route: .oneDNN, context: context)
        #expect(context.primitivesCreated == 3)                    // accumulating: another
        BF16GemmTests.check(shape, route: .oneDNN, context: context)
        #expect(context.primitivesCreated == 3 && context.kernelsUsed.values.reduce(0, +) == 5)
    }

    /// The fallback widens at most `widenBlockBytes` of weight at a time: blocks of 16 output
    /// columns here, with a partial last block, in both weight orders.
    @Test func fallbackWorksInBoundedBlocks() {
        let context = GemmContext()
        context.widenBlockBytes = 1
        for transB in [true, false] {
            for m in [1, 5, 20] {
                BF16GemmTests.check(Case(m: m, n: 50, k: 70, transB: transB, beta: 1, pad: 3), route: .openBLAS, context: context)
            }
        }
    }

    /// The scratch a fallback product grows (widened weight blocks, rounded activations) stays
    /// until released; released, it holds nothing, and the next product grows it again and is
    /// still right (`check` compares every element).
    @Test func releasedScratchHoldsNothingAndGrowsAgain() {
        let context = GemmContext()
        #expect(context.scratchBytes == 0)
        BF16GemmTests.check(Case(m: 20, n: 50, k: 70), route: .openBLAS, context: context)
        let grown = context.scratchBytes
        #expect(grown >= 4 * 50 * 70, "the widened weight alone: \(grown) bytes")
        context.releaseScratch()
        #expect(context.scratchBytes == 0)
        BF16GemmTests.check(Case(m: 20, n: 50, k: 70), route: .openBLAS, context: context)
        #expect(context.scratchBytes == grown)
    }

    /// An all-f32 product on `route`, checked against the definition; returns the kernel that ran.
    @discardableResult
    static func f32(m: Int, n: Int, k: Int, transB: Bool, alpha: Float = 1, beta: Float = 0, pad: Int = 0,
                    route: GemmRoute = .automatic, context: GemmContext = GemmContext()) -> GemmKernel {
        let lda = k + pad, ldb = (transB ? k : n) + pad, ldc = n + pad
        let a = BF16GemmTests.values(m * lda, 1), b = BF16GemmTests.values((transB ? n : k) * ldb, 2)
        var c = BF16GemmTests.values(m * ldc, 3)
        let expected = GemmVectorTests.reference(transA: false, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                                                 b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
        let kernel = a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in c.withUnsafeMutableBufferPointer { cp in
            Gemm.run(transB: transB, m: m, n: n, k: k, alpha: alpha, a: .f32(ap.baseAddress!), lda: lda, b: .f32(bp.baseAddress!),
                     ldb: ldb, beta: beta, c: .f32(cp.baseAddress!), ldc: ldc, route: route, context: context)
        } } }
        for i in 0..<m {
            for j in 0..<ldc {
                #expect(isClose(c[i * ldc + j], expected[i * ldc + j], rtol: 1e-5, atol: 1e-5), "\(kernel) m=\(m) [\(i), \(j)]")
            }
        }
        return kernel
    }

    /// f32 weights: OpenBLAS, except `[out, in]` at two rows or more where oneDNN has its AVX-512
    /// kernels (measured faster there); every path matches the definition, strided and scaled.
    @Test func f32ProductsGoWhereTheyWereMeasuredFastest() {
        let brgemm = OneDNN.hasAVX512Core
        let outIn = Self.f32(m: 12, n: 40, k: 33, transB: true, alpha: 0.5, beta: 1, pad: 3)
        if brgemm {
            guard case .oneDNN(let name) = outIn, !name.isEmpty else { Issue.record("\(outIn)"); return }
        } else {
            #expect(outIn == .openBLAS("sgemm"))
        }
        let twoRows = Self.f32(m: 2, n: 40, k: 33, transB: true)
        if case .oneDNN = twoRows { #expect(brgemm) } else { #expect(!brgemm && twoRows == .openBLAS("sgemm")) }
        #expect(Self.f32(m: 1, n: 40, k: 33, transB: true) == .openBLAS("sgemv"))
        #expect(Self.f32(m: 12, n: 40, k: 33, transB: false, beta: -0.5, pad: 2) == .openBLAS("sgemm"))
        #expect(Self.f32(m: 12, n: 40, k: 33, transB: true, route: .openBLAS) == .openBLAS("sgemm"))
        #expect(Self.f32(m: 12, n: 40, k: 33, transB: true, route: .rows) == .openBLAS("sgemm"))
        // Products whose shape changes every step (a growing cache, chunks) keep f32 on OpenBLAS: no primitive per shape.
        let context = GemmContext()
        for m in [2, 12, 37] { #expect(Self.f32(m: m, n: 40, k: 33, transB: true, route: .openBLASForF32, context: context) == .openBLAS("sgemm")) }
        #expect(context.primitivesCreated == 0)
        guard case .oneDNN = Self.f32(m: 12, n: 40, k: 33, transB: false, alpha: 2, beta: 0.25, pad: 1, route: .oneDNN) else {
            Issue.record("oneDNN's f32 matmul did not serve a product it was asked for")
            return
        }
    }

    /// Past `primitiveCapacity` the least recently used primitive goes; the cache never holds more.
    @Test func theCacheKeepsTheMostRecentlyUsedPrimitives() {
        let context = GemmContext()
        context.primitiveCapacity = 2
        let run = { (m: Int) in _ = Self.f32(m: m, n: 24, k: 16, transB: true, route: .oneDNN, context: context) }
        run(2); run(3); run(2); run(4)           // 3 was the least recently used when 4 arrived
        #expect(context.primitivesCreated == 3 && context.primitivesCached == 2)
        run(2); run(4)
        #expect(context.primitivesCreated == 3)
        run(3)
        #expect(context.primitivesCreated == 4 && context.primitivesCached == 2)
    }
}
