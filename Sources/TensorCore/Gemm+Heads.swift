import CKernels

extension Gemm {
    /// `heads` products `C_h = A_h · op(B_h)` (alpha 1, beta 0), head h's operands `h · aStride`,
    /// `h · bStride` and `h · cStride` elements on: the absorbed decode's W_UK and W_UV products
    /// for every local head. Where B is bf16 and m is within the row kernel's bound, A is rounded
    /// to bf16 once for all heads and one call runs the row kernel over every head's block, back
    /// to back (each head's product exactly as `run` would compute it alone); otherwise each head
    /// goes through `run` with `route`. Returns the kernel that ran.
    @discardableResult
    public static func runHeads(_ heads: Int, transB: Bool, m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, aStride: Int,
                                b: GemmSource, ldb: Int, bStride: Int, c: UnsafeMutablePointer<Float>, ldc: Int, cStride: Int,
                                route: GemmRoute = .openBLASForF32, context: GemmContext = .shared) -> GemmKernel {
        guard heads > 0, m > 0, n > 0 else { return .empty }
        guard case .bf16(let w) = b, k > 0, route == .automatic || route == .openBLASForF32 || route == .rows,
              route == .rows || rowKernelServes(m: m) else {
            var kernel = GemmKernel.empty
            for h in 0..<heads {
                kernel = run(transB: transB, m: m, n: n, k: k, a: .f32(a + h * aStride), lda: lda, b: b.advanced(by: h * bStride), ldb: ldb,
                             c: .f32(c + h * cStride), ldc: ldc, route: route, context: context)
            }
            return kernel
        }
        return context.locked { ctx in
            let x = ctx.scratchA.floats(heads * m * k)                                  // [heads·m, k], bf16 values
            for h in 0..<heads {
                for i in 0..<m { mlatp_bf16_round_f32(a + h * aStride + i * lda, x + (h * m + i) * k, k, Int32(MLATP_ISA_BEST)) }
            }
            let level = KernelISA.best
            mlatp_bf16_rows_heads(transB ? 1 : 0, heads, m, n, k, x, k, m * k, w.bits, ldb, bStride, c, ldc, cStride, level.rawValue)
            let kernel = GemmKernel.bf16Rows(level)
            ctx.record(kernel)
            return kernel
        }
    }
}
