import CKernels

/// The C kernels' "best instruction set this CPU runs".
private let bestISA = Int32(MLATP_ISA_BEST)

/// The kernels behind `Gemm.run` for products that are not all-f32. Each runs with the context's
/// lock held and uses its scratch buffers.
extension GemmContext {
    /// Runs `p`, and says which kernel did.
    func run(_ p: Product, route: GemmRoute) -> GemmKernel {
        if p.k == 0 {
            scaleC(p)
            return .empty
        }
        switch p.b {
        case .f32(let b):
            if Gemm.oneDNNServesF32(p, route: route), let kernel = try? oneDNN(p) { return kernel }
            // f32 weights: a bf16 A widened exactly, an f32 product, a bf16 C rounded once.
            let (a, lda, transA) = f32A(p, roundToBF16: false)
            return withF32C(p) { c, ldc in
                Gemm.run(transA: transA, transB: p.transB, m: p.m, n: p.n, k: p.k, alpha: p.alpha, a: a, lda: lda,
                         b: b, ldb: p.ldb, beta: p.beta, c: c, ldc: ldc)
                return .openBLAS(p.m == 1 || p.n == 1 ? "sgemv" : "sgemm")
            }
        case .bf16(let b):
            let automatic = route == .automatic || route == .openBLASForF32
            if route == .rows || (automatic && Gemm.rowKernelServes(m: p.m)) { return rows(p, b) }
            let support = OneDNN.bf16Support
            guard route == .oneDNN || (automatic && support == .native) else {
                return widened(p, b, reason: route == .openBLAS ? "asked for" : "oneDNN's bf16 is \(support.rawValue) on this CPU")
            }
            do { return try oneDNN(p) } catch { return widened(p, b, reason: "oneDNN: \(error.message)") }
        }
    }

    /// The row kernel: each weight element widened in a register, read once per group of rows.
    private func rows(_ p: Product, _ b: UnsafePointer<BFloat16>) -> GemmKernel {
        let (a, lda, _) = f32A(p, roundToBF16: true)
        return withF32C(p) { c, ldc in
            .bf16Rows(RowKernel.run(transB: p.transB, m: p.m, n: p.n, k: p.k, alpha: p.alpha, x: a, ldx: lda,
                                    w: b, ldw: p.ldb, beta: p.beta, y: c, ldy: ldc))
        }
    }

    /// The fallback: the weight widened to f32 a block of output columns at a time into a bounded
    /// scratch (at most `widenBlockBytes`, and at least 16 columns), each block through OpenBLAS.
    private func widened(_ p: Product, _ b: UnsafePointer<BFloat16>, reason: String) -> GemmKernel {
        widened(p, reason: reason) { j0, cols, w in
            if p.transB {   // rows j0..<j0+cols of B [n, k]
                mlatp_bf16_widen_2d(cols, p.k, b.bits + j0 * p.ldb, p.ldb, w, p.k, bestISA)
            } else {        // columns j0..<j0+cols of B [k, n]
                mlatp_bf16_widen_2d(p.k, cols, b.bits + j0, p.ldb, w, cols, bestISA)
            }
        }
    }

    /// The widening fallback for any weight format: `fill(j0, cols, w)` writes output columns
    /// `j0 ..< j0 + cols` of the weight as f32 into `w` (`[cols, k]` when transB, else `[k, cols]`),
    /// a block at a time; A is rounded to bf16 as the bf16 routes take it. The fp8 weights' tiled
    /// route fills the same blocks, so its products are the bf16 ones call for call.
    func widened(_ p: Product, reason: String, fill: (Int, Int, UnsafeMutablePointer<Float>) -> Void) -> GemmKernel {
        let (a, lda, transA) = f32A(p, roundToBF16: true)
        let block = Self.widenedBlock(n: p.n, k: p.k, bytes: widenBlockBytesLocked)
        let w = scratchB.floats(block * p.k)
        return withF32C(p) { c, ldc in
            for j0 in stride(from: 0, to: p.n, by: block) {
                let cols = min(block, p.n - j0)
                fill(j0, cols, w)
                Gemm.run(transA: transA, transB: p.transB, m: p.m, n: cols, k: p.k, alpha: p.alpha, a: a, lda: lda,
                         b: w, ldb: p.transB ? p.k : cols, beta: p.beta, c: c + j0, ldc: ldc)
            }
            return .widened(p.m == 1 || block == 1 ? "sgemv" : "sgemm", reason: reason)
        }
    }

    /// Output columns per widened block: what `bytes` of f32 scratch hold, a multiple of 16, at least 16.
    static func widenedBlock(n: Int, k: Int, bytes: Int) -> Int {
        min(max(16, bytes / (4 * max(k, 1))) / 16 * 16, n)
    }

    /// Through oneDNN's matmul primitive (made once per key), C in its own precision. With bf16
    /// weights an f32 A is rounded once into scratch first (oneDNN takes bf16 × bf16).
    func oneDNN(_ p: Product) throws(DNNLError) -> GemmKernel {
        var q = p
        if case .f32(let a) = p.a, p.b.precision == .bf16 {
            let dst = scratchA.bf16(p.m * p.k)
            if p.transA {
                for i in 0..<p.m { for j in 0..<p.k { dst[i * p.k + j] = BFloat16(a[j * p.lda + i]) } }
            } else {
                for i in 0..<p.m { mlatp_bf16_round(a + i * p.lda, dst.bits + i * p.k, p.k, bestISA) }
            }
            q.a = .bf16(UnsafePointer(dst))
            q.transA = false
            q.lda = p.k
        }
        let primitive = try primitive(q.key)
        do {
            try primitive.execute(a: q.a.raw, b: q.b.raw, c: q.c.raw, stream: try cpuStream())
        } catch {
            fatalError("\(error) — internal error: a oneDNN matmul made for \(q.key) failed to run")
        }
        return .oneDNN(primitive.implementation)
    }

    /// A as f32 values: as it is when it is f32 and needs no rounding; otherwise converted into
    /// scratch as a contiguous `[m, k]` (bf16 widened exactly, f32 rounded to bf16 precision).
    private func f32A(_ p: Product, roundToBF16: Bool) -> (UnsafePointer<Float>, lda: Int, transA: Bool) {
        let m = p.m, k = p.k, lda = p.lda
        switch p.a {
        case .f32(let a) where !roundToBF16:
            return (a, lda, p.transA)
        case .f32(let a):
            let dst = scratchA.floats(m * k)
            if p.transA {
                for i in 0..<m { for j in 0..<k { dst[i * k + j] = BFloat16(a[j * lda + i]).float } }
            } else {
                for i in 0..<m { mlatp_bf16_round_f32(a + i * lda, dst + i * k, k, bestISA) }
            }
            return (UnsafePointer(dst), k, false)
        case .bf16(let a):
            let dst = scratchA.floats(m * k)
            if p.transA {
                for i in 0..<m { for j in 0..<k { dst[i * k + j] = a[j * lda + i].float } }
            } else {
                mlatp_bf16_widen_2d(m, k, a.bits, lda, dst, k, bestISA)
            }
            return (UnsafePointer(dst), k, false)
        }
    }

    /// Runs `body` on an f32 C: the destination itself, or for a bf16 C an f32 scratch (holding C
    /// widened when beta needs it) that is rounded into C afterwards.
    private func withF32C(_ p: Product, _ body: (UnsafeMutablePointer<Float>, Int) -> GemmKernel) -> GemmKernel {
        switch p.c {
        case .f32(let c):
            return body(c, p.ldc)
        case .bf16(let c):
            let s = scratchC.floats(p.m * p.n)
            if p.beta != 0 { mlatp_bf16_widen_2d(p.m, p.n, UnsafePointer(c).bits, p.ldc, s, p.n, bestISA) }
            let kernel = body(s, p.n)
            for i in 0..<p.m { mlatp_bf16_round(s + i * p.n, c.bits + i * p.ldc, p.n, bestISA) }
            return kernel
        }
    }

    /// C = beta · C for k = 0 (beta = 0 overwrites whatever C held).
    private func scaleC(_ p: Product) {
        for i in 0..<p.m {
            for j in 0..<p.n {
                switch p.c {
                case .f32(let c): c[i * p.ldc + j] = p.beta == 0 ? 0 : p.beta * c[i * p.ldc + j]
                case .bf16(let c): c[i * p.ldc + j] = BFloat16(p.beta == 0 ? 0 : p.beta * c[i * p.ldc + j].float)
                }
            }
        }
    }
}
