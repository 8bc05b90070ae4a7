import CKernels

/// The products of the invariant forward (`--invariant`): each element of the result is computed
/// in an order fixed by its definition — not by the number of rows, the columns around it, the
/// blocking or the tile it falls in — so a token's row has the same bits alone, in a batch of any
/// size, or in a decode step; and a column the same bits whichever rank's slice holds it.
///
/// - `nn` (weight `[k, n]`): one fused multiply-add chain per element over k ascending, from +0
///   or, with `accumulate`, from what C holds: a chain split over calls (tiles of a cache) is
///   the chain of one call.
/// - `nt` (weight `[n, k]`): eight lane chains (p mod 8) summed in one fixed tree, then the
///   k mod 8 last terms chained on.
///
/// The AVX2 code and the portable code (`KernelISA.scalar`) evaluate the same operations in the
/// same order and give the same bits; AVX-512 CPUs run the AVX2 code. B may be f32 or bf16
/// (widened exactly); A and C are f32. Reference definitions: `FixedOrderGemm.reference…`.
public enum FixedOrderGemm {
    /// The instruction set the fixed-order kernels run at: AVX2 where the CPU has it (AVX-512
    /// CPUs included), else the portable code, which gives the same bits.
    public static var isa: KernelISA { min(KernelISA.best, .avx2) }

    /// `C[m, n] = A[m, k] · B[k, n]` (B row-major `[k, n]`, leading dimension ldb).
    public static func nn(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, b: GemmSource, ldb: Int,
                          c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool = false, isa: KernelISA = .best) {
        guard m > 0, n > 0 else { return }
        let (w, bf16) = raw(b)
        mlatp_fixed_nn(m, n, k, a, lda, w, bf16, ldb, c, ldc, accumulate ? 1 : 0, isa.rawValue)
    }

    /// `C[m, n] = A[m, k] · B[n, k]ᵀ` (B row-major `[n, k]`, leading dimension ldb).
    public static func nt(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, b: GemmSource, ldb: Int,
                          c: UnsafeMutablePointer<Float>, ldc: Int, isa: KernelISA = .best) {
        guard m > 0, n > 0 else { return }
        let (w, bf16) = raw(b)
        mlatp_fixed_nt(m, n, k, a, lda, w, bf16, ldb, c, ldc, isa.rawValue)
    }

    /// `y = x · Wᵀ` for a weight kept `[out, in]` (`transposed` true: the NT form) or `[in, out]`
    /// (the NN form): x `[T, in]` → y `[T, out]`, y preallocated.
    @discardableResult
    public static func linear(_ x: Matrix, weight: AnyMatrix, outIn: Bool, into y: inout Matrix) throws(ShapeError) -> GemmKernel {
        let (out, inner) = outIn ? (weight.rows, weight.cols) : (weight.cols, weight.rows)
        guard x.cols == inner, y.rows == x.rows, y.cols == out else {
            throw ShapeError(op: "fixed-order x · Wᵀ", x.shape, Shape(x.rows, inner), hint: "x must be [T, in] and y [T, out]")
        }
        let ldw = weight.cols
        x.storage.withUnsafeBufferPointer { xp in
            weight.withGemmSource { w in
                y.storage.withUnsafeMutableBufferPointer { yp in
                    if outIn {
                        nt(m: x.rows, n: out, k: inner, a: xp.baseAddress!, lda: x.cols, b: w, ldb: ldw, c: yp.baseAddress!, ldc: out)
                    } else {
                        nn(m: x.rows, n: out, k: inner, a: xp.baseAddress!, lda: x.cols, b: w, ldb: ldw, c: yp.baseAddress!, ldc: out)
                    }
                }
            }
        }
        return x.rows == 0 || out == 0 ? .empty : .fixedOrder(isa)
    }

    /// The NN definition, element by element (for tests): one `fma` chain over k ascending.
    public static func referenceNN(row x: [Float], column w: [Float], from start: Float = 0) -> Float {
        var acc = start
        for p in 0..<x.count { acc = fma(x[p], w[p], acc) }
        return acc
    }

    /// The NT definition, element by element (for tests): eight lanes, the fixed tree, the tail.
    public static func referenceNT(row x: [Float], row w: [Float]) -> Float {
        var a = [Float](repeating: 0, count: 8)
        let k8 = x.count - x.count % 8
        for p in stride(from: 0, to: k8, by: 8) { for l in 0..<8 { a[l] = fma(x[p + l], w[p + l], a[l]) } }
        var s = ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]))
        for p in k8..<x.count { s = fma(x[p], w[p], s) }
        return s
    }

    private static func fma(_ a: Float, _ b: Float, _ c: Float) -> Float { c.addingProduct(a, b) }

    private static func raw(_ b: GemmSource) -> (UnsafeRawPointer, Int32) {
        switch b {
        case .f32(let p): (UnsafeRawPointer(p), 0)
        case .bf16(let p): (UnsafeRawPointer(p), 1)
        }
    }
}

/// Which kernels a layer's products run on: the fastest the routes choose (`Gemm`), or the
/// fixed-order kernels of the invariant forward (`FixedOrderGemm`).
public enum ProductKernels: Sendable {
    case fastest
    case fixedOrder
}
