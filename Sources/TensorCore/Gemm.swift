import CBLAS

/// Matrix products through OpenBLAS `cblas_sgemm`. Transposes are folded into the call,
/// so `x · Wᵀ` with a PyTorch `[out, in]` weight never copies the weight.
public enum Gemm {
    /// C[m, n] = alpha · op(A) · op(B) + beta · C on raw row-major storage with leading
    /// dimensions, so that strided views (one head's columns of a wider matrix) need no copy.
    /// `op(A)` is `[m, k]`; `op(B)` is `[k, n]`.
    @inline(__always)
    public static func run(
        transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
        alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        guard m > 0, n > 0 else { return }
        if k == 0 {
            // BLAS leaves C untouched when k = 0 only for beta = 1; make beta = 0 explicit.
            for i in 0..<m { for j in 0..<n { c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j] } }
            return
        }
        if m == 1 || n == 1 {
            vector(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                   beta: beta, c: c, ldc: ldc)
            return
        }
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// A product with one row (`m = 1`, a decode step's token) or one column (`n = 1`) as a
    /// matrix-vector product. OpenBLAS's sgemm packs the whole of the other operand into its
    /// panel buffers first, so for one row it moves the weight about three times; `cblas_sgemv`
    /// streams it once (measured 4× faster on a [1, 7168]·[7168, 8192] product).
    @inline(__always)
    static func vector(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                       a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                       beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        // beta = 0 must overwrite C whatever it held (NaN included), as sgemm does.
        if beta == 0 {
            if m == 1 { for j in 0..<n { c[j] = 0 } } else { for i in 0..<m { c[i * ldc] = 0 } }
        }
        let y: Float = beta == 0 ? 0 : beta
        if m == 1 {
            // C[0, j] = Σ_p op(A)[0, p] · op(B)[p, j]; op(A)'s one row has stride lda when A is transposed.
            let incA = Int32(transA ? lda : 1)
            if transB {   // B [n, k]: C = B · a
                cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(n), Int32(k), alpha, b, Int32(ldb), a, incA, y, c, 1)
            } else {      // B [k, n]: C = Bᵀ · a
                cblas_sgemv(CblasRowMajor, CblasTrans, Int32(k), Int32(n), alpha, b, Int32(ldb), a, incA, y, c, 1)
            }
        } else {
            // C[i, 0] = Σ_p op(A)[i, p] · op(B)[p, 0]; op(B)'s one column has stride ldb unless B is transposed.
            let incB = Int32(transB ? 1 : ldb)
            if transA {   // A [k, m]: C = Aᵀ · b
                cblas_sgemv(CblasRowMajor, CblasTrans, Int32(k), Int32(m), alpha, a, Int32(lda), b, incB, y, c, Int32(ldc))
            } else {      // A [m, k]: C = A · b
                cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(m), Int32(k), alpha, a, Int32(lda), b, incB, y, c, Int32(ldc))
            }
        }
    }

    /// `out = x · Wᵀ` (+ `out` when `accumulate`): x `[T, in]`, W `[out, in]` → `[T, out]`, in f32.
    /// Writes into `out`, which must already have shape `[T, out]`. (The f32 case of the generic
    /// `linear`, kept concrete so that callers in other modules get it specialised.)
    public static func linear(_ x: Matrix, weight w: Matrix, into out: inout Matrix, accumulate: Bool = false) throws(ShapeError) {
        try linear(x, weight: w, into: &out, accumulate: accumulate, route: .automatic, context: .shared)
    }

    /// `out = x · W` for an f32 weight kept as `[in, out]`: x `[T, in]`, W `[in, out]` → `[T, out]`.
    /// Writes into `out`, which must already have shape `[T, out]`.
    public static func linearNN(_ x: Matrix, weight w: Matrix, into out: inout Matrix) throws(ShapeError) {
        try linearNN(x, weight: w, into: &out, accumulate: false, route: .automatic, context: .shared)
    }

    /// `x · Wᵀ` as a new matrix.
    public static func linear(_ x: Matrix, weight w: Matrix) throws(ShapeError) -> Matrix {
        var out = Matrix(rows: x.rows, cols: w.rows)
        try linear(x, weight: w, into: &out)
        return out
    }

    /// `A · B`: A `[m, k]`, B `[k, n]` → `[m, n]`.
    public static func matmul(_ a: Matrix, _ b: Matrix) throws(ShapeError) -> Matrix {
        guard a.cols == b.rows else { throw ShapeError(op: "A · B", a.shape, b.shape, hint: "A's columns must equal B's rows") }
        var out = Matrix(rows: a.rows, cols: b.cols)
        guard a.rows > 0, b.cols > 0, a.cols > 0 else { return out }
        a.storage.withUnsafeBufferPointer { ap in
            b.storage.withUnsafeBufferPointer { bp in
                out.storage.withUnsafeMutableBufferPointer { op in
                    run(m: a.rows, n: b.cols, k: a.cols, a: ap.baseAddress!, lda: a.cols,
                        b: bp.baseAddress!, ldb: b.cols, c: op.baseAddress!, ldc: b.cols)
                }
            }
        }
        return out
    }

    /// FLOPs of one `[m, k] · [k, n]` product (a multiply and an add per term), checked.
    public static func flops(m: Int, n: Int, k: Int) throws(CountOverflow) -> Int {
        try Checked.product(2, m, n, k, what: "FLOPs of a [\(m), \(k)]·[\(k), \(n)] product")
    }
}
