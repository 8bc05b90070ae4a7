import CKernels

extension FP8BlockMatrix {
    /// Rows of fp8 weight dequantized per tile on the prefill route: a bounded bf16 scratch, whole
    /// tiles of the block grid, never the whole weight (SGLang's CPU W8A16 GEMM dequantizes one
    /// block at a time the same way).
    public static let tileBytes = 8 << 20

    /// `y = x · Wᵀ` accumulated in f32, without bias or rounding: x `[T, cols]` (used as bf16
    /// values, W8A16), y `[T, rows]` preallocated. Up to the row kernel's bound (`Gemm.rowKernelMaxRows`
    /// where oneDNN's bf16 is native, `…WithoutNativeBF16` elsewhere) the fp8 row kernel reads the
    /// e4m3 bytes and scales directly, one byte per weight element. Above it, where oneDNN's bf16
    /// is native, each tile of rows (`tileBytes` of bf16, whole tiles of the block grid) is
    /// dequantized into a bf16 scratch and multiplied by oneDNN; elsewhere the widened OpenBLAS
    /// fallback runs on blocks filled straight from fp8 — the very blocks and calls a bf16 weight of
    /// these values takes, so the bits are its bits. Each weight element enters the product as
    /// bf16(e4m3 × scale).
    /// `tileBytes` bounds the prefill route's bf16 tile (whole tiles of the block grid, at least one).
    public func product(_ x: Matrix, into y: inout Matrix, tileBytes: Int = tileBytes, context: GemmContext = .shared) throws(ShapeError) -> GemmKernel {
        guard x.cols == cols else {
            throw ShapeError(op: "x · Wᵀ (fp8)", Shape(x.rows, x.cols), Shape(rows, cols), hint: "x's columns must equal W's in-features (W is [out, in])")
        }
        guard y.rows == x.rows, y.cols == rows else { throw ShapeError(op: "x · Wᵀ (fp8) output", Shape(y.rows, y.cols), Shape(x.rows, rows)) }
        let m = x.rows
        guard m > 0, rows > 0 else { return .empty }
        return x.storage.withUnsafeBufferPointer { xp in
            y.storage.withUnsafeMutableBufferPointer { yp in
                context.locked { ctx in
                    let kernel = ctx.fp8Product(self, x: xp.baseAddress!, m: m, y: yp.baseAddress!, tileBytes: tileBytes)
                    ctx.record(kernel)
                    return kernel
                }
            }
        }
    }
}

extension FP8BlockMatrix {
    /// Rows of one bf16 tile of the prefill route: whole tiles of the block grid filling at most
    /// `tileBytes` (at least one block of rows), never more than the matrix has.
    public func tileRows(tileBytes: Int = tileBytes) -> Int {
        min(rows, max(1, tileBytes / (2 * max(cols, 1)) / blockSize) * blockSize)
    }

    /// The fp8 row kernel: y `[m, rows]` = x `[m, cols]` · Wᵀ with f32 rows x used as given, each
    /// weight element bf16(e4m3 × scale) in a register; the tiles and accumulation order of the
    /// bf16 row kernel (`RowKernel`), at `isa` (capped at what this CPU runs). Returns the level that ran.
    @discardableResult
    public func rowProduct(_ x: UnsafePointer<Float>, m: Int, into y: UnsafeMutablePointer<Float>, isa: KernelISA = .best) -> KernelISA {
        let level = min(isa, KernelISA.best)
        withTile(rows: 0) { wp, scales, rowScale, row0 in
            mlatp_fp8_rows_nt(m, rows, cols, 1, x, cols, wp, cols, scales, scaleCols, rowScale, row0, columnOffset, blockSize,
                              0, y, rows, level.rawValue)
        }
        return level
    }
}

extension GemmContext {
    /// `fp8Product` with the lock held: x `[m, cols]`, y `[m, rows]`, both contiguous.
    func fp8Product(_ w: FP8BlockMatrix, x: UnsafePointer<Float>, m: Int, y: UnsafeMutablePointer<Float>, tileBytes: Int) -> GemmKernel {
        let n = w.rows, k = w.cols
        guard k > 0 else {
            y.update(repeating: 0, count: m * n)
            return .empty
        }
        if Gemm.rowKernelServes(m: m) {
            // The activations as bf16 values, as the bf16 row route takes them.
            let xa = scratchA.floats(m * k)
            mlatp_bf16_round_f32(x, xa, m * k, Int32(MLATP_ISA_BEST))
            return .fp8Rows(w.rowProduct(xa, m: m, into: y))
        }
        if OneDNN.bf16Support != .native {
            // The bf16 fallback's own blocks, filled from fp8: the same sgemm calls as a bf16 weight of
            // these values (the product's b is not read: `fill` supplies the weight).
            let inner = widened(Product(transA: false, transB: true, m: m, n: n, k: k, alpha: 1, a: .f32(x), lda: k,
                                        b: .f32(x), ldb: k, beta: 0, c: .f32(y), ldc: n),
                                reason: "oneDNN's bf16 is \(OneDNN.bf16Support.rawValue) on this CPU") { j0, rows, dst in
                w.dequantize(rows: j0, count: rows, into: dst, ldd: k)
            }
            return .fp8Tiles(inner.description)
        }
        // x rounded to bf16 once for every tile; each tile's product written densely and then
        // copied into its columns of y: with C's leading dimension above the tile's width, oneDNN
        // 2.6 leaves its brgemm matmul for `gemm:jit` (bench names the kernel that ran).
        let tileRows = w.tileRows(tileBytes: tileBytes)
        let tile = scratchW.bf16(tileRows * k)                                       // [tileRows, k] bf16
        let xa = scratchX.bf16(m * k)                                                // [m, k] bf16
        mlatp_bf16_round(x, xa.bits, m * k, Int32(MLATP_ISA_BEST))
        let part = tileRows < n ? scratchC.floats(m * tileRows) : y                  // [m, tileRows] f32
        var inner = GemmKernel.empty
        for r0 in stride(from: 0, to: n, by: tileRows) {
            let rows = min(tileRows, n - r0)
            w.dequantize(rows: r0, count: rows, into: tile, ldd: k)
            inner = run(Product(transA: false, transB: true, m: m, n: rows, k: k, alpha: 1, a: .bf16(UnsafePointer(xa)), lda: k,
                                b: .bf16(UnsafePointer(tile)), ldb: k, beta: 0, c: .f32(part), ldc: rows), route: .automatic)
            if part != y {
                for i in 0..<m { (y + i * n + r0).update(from: part + i * rows, count: rows) }
            }
        }
        return .fp8Tiles(inner.description)
    }
}
