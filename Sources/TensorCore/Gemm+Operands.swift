/// Layer products on whole matrices of either precision. The weight's storage decides the
/// arithmetic (see `Gemm.run(… a: GemmSource …)`): a layer that holds an `AnyMatrix` weight calls
/// these and never switches on its precision itself.
extension Gemm {
    /// `out = x · Wᵀ` (+ `out` when `accumulate`): x `[T, in]`, W `[out, in]` (PyTorch's layout; the
    /// transpose is folded into the product) → `[T, out]`, which `out` must already have. Returns the kernel that ran.
    @discardableResult
    public static func linear<X: GemmOperand, W: GemmOperand, Y: GemmResult>(
        _ x: X, weight w: W, into out: inout Y, accumulate: Bool = false,
        route: GemmRoute = .automatic, context: GemmContext = .shared
    ) throws(ShapeError) -> GemmKernel {
        guard x.cols == w.cols else {
            throw ShapeError(op: "x · Wᵀ", Shape(x.rows, x.cols), Shape(w.rows, w.cols),
                             hint: "x's columns must equal W's in-features (W is [out, in])")
        }
        guard out.rows == x.rows, out.cols == w.rows else {
            throw ShapeError(op: "x · Wᵀ output", Shape(out.rows, out.cols), Shape(x.rows, w.rows))
        }
        return product(x, w, transB: true, into: &out, accumulate: accumulate, route: route, context: context)
    }

    /// `out = x · W` (+ `out` when `accumulate`) for a weight kept as `[in, out]`: x `[T, in]`,
    /// W `[in, out]` → `[T, out]`, which `out` must already have. Returns the kernel that ran.
    @discardableResult
    public static func linearNN<X: GemmOperand, W: GemmOperand, Y: GemmResult>(
        _ x: X, weight w: W, into out: inout Y, accumulate: Bool = false,
        route: GemmRoute = .automatic, context: GemmContext = .shared
    ) throws(ShapeError) -> GemmKernel {
        guard x.cols == w.rows else {
            throw ShapeError(op: "x · W", Shape(x.rows, x.cols), Shape(w.rows, w.cols),
                             hint: "x's columns must equal W's in-features (W is [in, out])")
        }
        guard out.rows == x.rows, out.cols == w.cols else {
            throw ShapeError(op: "x · W output", Shape(out.rows, out.cols), Shape(x.rows, w.cols))
        }
        return product(x, w, transB: false, into: &out, accumulate: accumulate, route: route, context: context)
    }

    /// `x · Wᵀ` as a new f32 matrix, for a weight of either precision.
    public static func linear<W: GemmOperand>(_ x: Matrix, weight w: W) throws(ShapeError) -> Matrix {
        var out = Matrix(rows: x.rows, cols: w.rows)
        try linear(x, weight: w, into: &out)
        return out
    }

    /// x · op(W) into `out`, shapes already checked.
    private static func product<X: GemmOperand, W: GemmOperand, Y: GemmResult>(
        _ x: X, _ w: W, transB: Bool, into out: inout Y, accumulate: Bool, route: GemmRoute, context: GemmContext
    ) -> GemmKernel {
        let m = x.rows, k = x.cols, n = out.cols
        guard m > 0, n > 0 else { return .empty }
        return x.withGemmSource { a in
            w.withGemmSource { b in
                out.withGemmDestination { c in
                    run(transB: transB, m: m, n: n, k: k, a: a, lda: k, b: b, ldb: w.cols,
                        beta: accumulate ? 1 : 0, c: c, ldc: n, route: route, context: context)
                }
            }
        }
    }
}
