import CKernels
import CDNNL

/// The GEMM entry point for operands of any precision. The precisions decide the arithmetic:
/// - B (the weight) f32: an f32 product (OpenBLAS, or oneDNN where `GemmRoute.automatic` says);
///   a bf16 A is widened exactly first.
/// - B bf16: a product of bf16 operands accumulated in f32. A is taken at bf16 precision (an f32
///   A is rounded once), so every kernel computes the same thing; `route` picks the kernel.
/// A bf16 C receives the f32 result rounded once. `beta` scales C first; beta = 0 overwrites it.
extension Gemm {
    /// Rows up to which `.automatic` uses the bf16 row kernel (a decode token or a small batch)
    /// where oneDNN's bf16 is native: its matmul reaches only 10–26 GFLOP/s on one row.
    public static let rowKernelMaxRows = 8

    /// The same bound where oneDNN's bf16 is not native and the alternative is the widening
    /// fallback: measured here at [m, 7168]·[7168, 8192], the row kernel ran 45–79 GFLOP/s against
    /// the fallback's 37–39 at m = 32, and 44–48 against 59–62 at m = 64.
    public static let rowKernelMaxRowsWithoutNativeBF16 = 32

    /// Whether `.automatic` gives m rows with bf16 weights to the row kernel.
    static func rowKernelServes(m: Int) -> Bool {
        m <= (OneDNN.bf16Support == .native ? rowKernelMaxRows : rowKernelMaxRowsWithoutNativeBF16)
    }

    /// C[m, n] = alpha · op(A) · op(B) + beta · C on row-major storage with leading dimensions,
    /// as `run(… a: UnsafePointer<Float> …)`, for operands of either precision. Returns the kernel that ran.
    @discardableResult
    public static func run(
        transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
        alpha: Float = 1, a: GemmSource, lda: Int, b: GemmSource, ldb: Int,
        beta: Float = 0, c: GemmDestination, ldc: Int,
        route: GemmRoute = .automatic, context: GemmContext = .shared
    ) -> GemmKernel {
        guard m > 0, n > 0 else { return .empty }
        let p = Product(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                        beta: beta, c: c, ldc: ldc)
        if case .f32(let ap) = a, case .f32(let bp) = b, case .f32(let cp) = c, k == 0 || !oneDNNServesF32(p, route: route) {
            run(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: ap, lda: lda, b: bp, ldb: ldb,
                beta: beta, c: cp, ldc: ldc)
            return k == 0 ? .empty : .openBLAS(m == 1 || n == 1 ? "sgemv" : "sgemm")
        }
        return context.locked { ctx in
            let kernel = ctx.run(p, route: route)
            ctx.record(kernel)
            return kernel
        }
    }
}

extension Gemm {
    /// Whether an all-f32 product goes to oneDNN: when asked, or under `.automatic` for a weight
    /// kept `[out, in]` (B transposed, A not) at two rows or more where oneDNN has its AVX-512 kernels.
    /// Measured here, one thread, same-run medians: `[out, in]` weights 148–154 GFLOP/s against
    /// OpenBLAS's 117–126 at T = 256, 10–39 against 5–22 at 2–8 rows; `[in, out]` weights 42–51
    /// against 120 (q_a, q_b, o_proj shapes), so those stay with OpenBLAS, as do single rows (sgemv).
    static func oneDNNServesF32(_ p: Product, route: GemmRoute) -> Bool {
        guard p.a.precision == .f32, p.b.precision == .f32, p.c.precision == .f32, p.k > 0 else { return false }
        switch route {
        case .oneDNN: return true
        case .openBLAS, .rows, .openBLASForF32: return false
        case .automatic: return p.transB && !p.transA && p.m >= 2 && OneDNN.hasAVX512Core
        }
    }
}

/// The bf16 weight-streaming kernel for a few rows: y = alpha · x · op(W) + beta · y with f32 rows
/// x, a bf16 weight W (`[n, k]` when `transB`, else `[k, n]`) widened in registers, f32
/// accumulation. Every weight byte is read from memory once, whatever m (rows past a group of
/// four (`[n, k]`) or eight (`[k, n]`) re-read it from cache). x is used as given (no rounding).
public enum RowKernel {
    /// Runs the product at `isa` (capped at what this CPU runs) and returns the level that ran.
    @discardableResult
    public static func run(transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                           x: UnsafePointer<Float>, ldx: Int, w: UnsafePointer<BFloat16>, ldw: Int,
                           beta: Float = 0, y: UnsafeMutablePointer<Float>, ldy: Int, isa: KernelISA = .best) -> KernelISA {
        let level = min(isa, KernelISA.best)
        if transB {
            mlatp_bf16_rows_nt(m, n, k, alpha, x, ldx, w.bits, ldw, beta, y, ldy, level.rawValue)
        } else {
            mlatp_bf16_rows_nn(m, n, k, alpha, x, ldx, w.bits, ldw, beta, y, ldy, level.rawValue)
        }
        return level
    }
}

extension GemmContext {
    /// One product straight through oneDNN's matmul primitive, whatever the precisions (f32 × f32
    /// included; an f32 A with a bf16 B is rounded once first), cached like every other: the
    /// reference a benchmark measures against. Returns oneDNN's implementation string; throws
    /// when oneDNN cannot make the primitive (e.g. bf16 on AVX2).
    @discardableResult
    public func oneDNNMatmul(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1,
                             a: GemmSource, lda: Int, b: GemmSource, ldb: Int, beta: Float = 0,
                             c: GemmDestination, ldc: Int) throws(DNNLError) -> String {
        let p = Product(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                        beta: beta, c: c, ldc: ldc)
        return try locked { ctx throws(DNNLError) in
            guard case .oneDNN(let implementation) = try ctx.oneDNN(p) else { return "" }
            return implementation
        }
    }
}

/// The weight layout oneDNN reads for a product.
public struct OneDNNWeightLayout: Sendable, Equatable {
    public var implementation: String
    /// Bytes of the weight in that layout.
    public var bytes: Int
    /// Whether it is the layout the weight is kept in (row-major, in the key's order): no reorder needed.
    public var isPlain: Bool
}

extension GemmContext {
    /// The layout oneDNN picks for `key`'s weight (with `blockedWeights` set, its free choice):
    /// whether a reorder at load would be needed, and what it would cost in memory.
    public func oneDNNWeightLayout(_ key: MatmulKey) throws(DNNLError) -> OneDNNWeightLayout {
        try locked { ctx throws(DNNLError) in
            let p = try ctx.primitive(key)
            return OneDNNWeightLayout(implementation: p.implementation, bytes: p.weightLayoutBytes, isPlain: p.weightsArePlain)
        }
    }

    /// Copies a weight kept in `key`'s plain order into the layout `key`'s primitive reads (with
    /// `blockedWeights`, oneDNN's own), once at load; `into` must hold `oneDNNWeightLayout(key).bytes`.
    public func oneDNNReorderWeights(_ key: MatmulKey, from plain: UnsafeRawPointer, into: UnsafeMutableRawPointer) throws(DNNLError) {
        try locked { ctx throws(DNNLError) in
            try ctx.primitive(key).reorderWeights(from: plain, into: into, engine: try ctx.cpuEngine(), stream: try ctx.cpuStream())
        }
    }

    /// Runs `key`'s primitive on raw operands (B in the primitive's layout: reordered first for
    /// `blockedWeights` keys) and returns its implementation string: for measurements.
    @discardableResult
    public func oneDNNMatmul(_ key: MatmulKey, a: UnsafeRawPointer, b: UnsafeRawPointer, c: UnsafeMutableRawPointer) throws(DNNLError) -> String {
        try locked { ctx throws(DNNLError) in
            let p = try ctx.primitive(key)
            try p.execute(a: a, b: b, c: c, stream: try ctx.cpuStream())
            return p.implementation
        }
    }
}

/// One product's arguments, as `Gemm.run` takes them.
struct Product {
    var transA, transB: Bool
    var m, n, k: Int
    var alpha: Float
    var a: GemmSource
    var lda: Int
    var b: GemmSource
    var ldb: Int
    var beta: Float
    var c: GemmDestination
    var ldc: Int

    var key: MatmulKey {
        MatmulKey(m: m, n: n, k: k, transA: transA, transB: transB, lda: lda, ldb: ldb, ldc: ldc,
                  a: a.precision, b: b.precision, c: c.precision, alpha: alpha, beta: beta)
    }
}
