/// bf16 storage of an f32 result: round to nearest even and keep the (exact) f32 of that bf16,
/// as a bf16 tensor op does — torch computes a bf16 element-wise op in f32 from the bf16 operands
/// and rounds the result once. The kernels below take a `Precision` and dispatch on it once; the
/// f32 path is the plain kernel, unchanged.
enum RoundBF16 {
    @inline(__always) static func r(_ x: Float) -> Float { BFloat16(x).float }
    /// Eight lanes, the same bits as `BFloat16.init(_:)` (NaN kept a quiet NaN; overflow to ±Inf).
    /// Integer arithmetic only: a lane mask built by comparison (`.>`, `replacing(with:where:)`)
    /// compiles to a loop over the lanes, which made every bf16 element-wise kernel several times slower.
    @inline(__always) static func r(_ v: SIMD8<Float>) -> SIMD8<Float> {
        let u = unsafeBitCast(v, to: SIMD8<Int32>.self)
        let high: Int32 = -65_536                                         // 0xffff_0000
        let rounded = (u &+ 0x7fff &+ ((u &>> 16) & 1)) & high
        let quiet = (u | 0x0040_0000) & high
        let nan = (0x7f80_0000 &- (u & 0x7fff_ffff)) &>> 31               // all ones where |u| > +Inf
        return unsafeBitCast((rounded & ~nan) | (quiet & nan), to: SIMD8<Float>.self)
    }
}

extension Kernels {
    /// Eight lanes stored in bf16 (and kept as their exact f32): the rounding every bf16
    /// element-wise kernel here applies.
    @inline(__always)
    public static func roundedToBF16(_ v: SIMD8<Float>) -> SIMD8<Float> { RoundBF16.r(v) }
}

extension Precision {
    /// `x` stored in this precision: as it is for f32, rounded to bf16 (and kept as its exact f32) for bf16.
    @inline(__always)
    public func round(_ x: Float) -> Float { self == .f32 ? x : RoundBF16.r(x) }
}

extension Matrix {
    /// RMSNorm over each row with a weight held in either precision, stored in `precision`
    /// (`Kernels.rmsNorm(…, storing:)`).
    public mutating func rmsNormRows(weight: AnyVector, eps: Float, storing precision: Precision) throws(ShapeError) {
        guard weight.count == cols else {
            throw ShapeError(op: "RMSNorm", shape, Shape(weight.count), hint: "the norm weight needs one value per column")
        }
        let c = cols
        storage.withUnsafeMutableBufferPointer { s in
            weight.withFloats { w in
                for i in 0..<rows { Kernels.rmsNorm(s.baseAddress! + i * c, count: c, weight: w.baseAddress!, eps: eps, storing: precision) }
            }
        }
    }

    /// Every element stored in `precision`: unchanged for f32, rounded to bf16 (nearest even, in
    /// place, as f32 values) for bf16 — a tensor op's output as a bf16 engine keeps it.
    public mutating func round(to precision: Precision) {
        guard precision == .bf16 else { return }
        storage.withUnsafeMutableBufferPointer { BF16.roundInPlace($0) }
    }
}

extension Kernels {
    /// Rounds a `rows × cols` block with leading dimension `ld` to `precision` in place (a strided
    /// view: one head's columns of a wider activation). A no-op for f32.
    public static func round(_ x: UnsafeMutablePointer<Float>, rows: Int, cols: Int, ld: Int, to precision: Precision) {
        guard precision == .bf16, cols > 0 else { return }
        if ld == cols { return BF16.roundInPlace(UnsafeMutableBufferPointer(start: x, count: rows * cols)) }
        for i in 0..<rows { BF16.roundInPlace(UnsafeMutableBufferPointer(start: x + i * ld, count: cols)) }
    }

    /// RMSNorm of `count` floats at `x` in place, stored in `precision`: in f32 as `rmsNorm`; in bf16
    /// as HF's `DeepseekV3RMSNorm` on a bf16 tensor — `x · rsqrt(mean(x²) + eps)` in f32, rounded,
    /// then times the (bf16) weight, rounded again.
    @inline(__always)
    public static func rmsNorm(_ x: UnsafeMutablePointer<Float>, count: Int, weight: UnsafePointer<Float>, eps: Float,
                               storing precision: Precision) {
        switch precision {
        case .f32: rmsNorm(x, count: count, weight: weight, eps: eps)
        case .bf16:
            var sum: Float = 0
            for j in 0..<count { sum += x[j] * x[j] }
            let inv = 1 / (sum / Float(count) + eps).squareRoot()
            for j in 0..<count { x[j] = RoundBF16.r(RoundBF16.r(x[j] * inv) * weight[j]) }
        }
    }

    /// Softmax of `count` floats at `x` in place (`softmax`), the probabilities stored in
    /// `precision` (HF's `softmax(…, dtype=float32).to(bf16)`). Returns the log-sum-exp in f32.
    @inline(__always) @discardableResult
    public static func softmax(_ x: UnsafeMutablePointer<Float>, count: Int, storing precision: Precision) -> Float {
        let lse = softmax(x, count: count)
        if precision == .bf16 { BF16.roundInPlace(UnsafeMutableBufferPointer(start: x, count: count)) }
        return lse
    }

    /// Scores of a GEMM made with `alpha = 1`, scaled as HF's bf16 eager attention does: the GEMM's
    /// output rounded, times `scale`, rounded again (`matmul(q, kᵀ) * scaling`). For bf16 only: an
    /// f32 forward folds the scale into the GEMM's alpha (`SoftmaxScaling`).
    @inline(__always)
    static func roundThenScale(_ x: UnsafeMutablePointer<Float>, count: Int, scale: Float) {
        for j in 0..<count { x[j] = RoundBF16.r(RoundBF16.r(x[j]) * scale) }
    }

    /// `a[j] = a[j] · act(g[j])` for `count` floats with `act` sigmoid, stored in `precision`: in
    /// bf16 the activation rounded, then the product rounded (the gate hook on bf16 tensors).
    @inline(__always)
    public static func multiplyBySigmoid(_ a: UnsafeMutablePointer<Float>, gate g: UnsafePointer<Float>, count: Int, storing precision: Precision) {
        switch precision {
        case .f32: multiplyBySigmoid(a, gate: g, count: count)
        case .bf16: gatedBF16(a, g, count, { RoundBF16.r(1 / (1 + FastExp.exp(-$0))) }, { RoundBF16.r(Activation.sigmoid($0)) })
        }
    }

    /// FastDeploy's scaled_softsign, `2g / (1 + |g|)`, stored in `precision`: in bf16 as torch
    /// evaluates `2.0 * x / (1.0 + x.abs())` on a bf16 tensor — `2g` and `|g|` exact, `1 + |g|`
    /// rounded, the quotient rounded — then the product with `a` rounded.
    @inline(__always)
    public static func multiplyByScaledSoftsign(_ a: UnsafeMutablePointer<Float>, gate g: UnsafePointer<Float>, count: Int,
                                                storing precision: Precision) {
        switch precision {
        case .f32: multiplyByScaledSoftsign(a, gate: g, count: count)
        case .bf16:
            gatedBF16(a, g, count,
                      { g in RoundBF16.r(2 * g / RoundBF16.r(1 + g.replacing(with: -g, where: g .< 0))) },
                      { g in RoundBF16.r(2 * g / RoundBF16.r(1 + abs(g))) })
        }
    }

    /// `a[j] *= softplus(g[j])`, stored in `precision` (bf16: the activation rounded, then the product).
    @inline(__always)
    public static func multiplyBySoftplus(_ a: UnsafeMutablePointer<Float>, gate g: UnsafePointer<Float>, count: Int, storing precision: Precision) {
        switch precision {
        case .f32: multiplyBySoftplus(a, gate: g, count: count)
        case .bf16: gatedBF16(a, g, count, { RoundBF16.r(FastLog.softplus($0)) }, { RoundBF16.r(Activation.softplus($0)) })
        }
    }

    /// `a[j] *= s` for `count` floats (one head's v channels by its head-wise gate, `s` already
    /// stored in `precision`), each product stored in `precision`.
    @inline(__always)
    public static func scale(_ a: UnsafeMutablePointer<Float>, by s: Float, count: Int, storing precision: Precision) {
        scale(a, by: s, count: count)
        if precision == .bf16 { BF16.roundInPlace(UnsafeMutableBufferPointer(start: a, count: count)) }
    }

    /// `a[j] = bf16(a[j] · f(g[j]))`: `vector` on eight lanes at a time, `scalar` on the tail, where
    /// `f` already rounds the activation to bf16.
    @inline(__always)
    static func gatedBF16(_ a: UnsafeMutablePointer<Float>, _ g: UnsafePointer<Float>, _ count: Int,
                          _ vector: (SIMD8<Float>) -> SIMD8<Float>, _ scalar: (Float) -> Float) {
        let ra = UnsafeMutableRawPointer(a), rg = UnsafeRawPointer(g)
        var j = 0
        while j + 8 <= count {
            let f = vector(rg.loadUnaligned(fromByteOffset: 4 * j, as: SIMD8<Float>.self))
            let p = ra.loadUnaligned(fromByteOffset: 4 * j, as: SIMD8<Float>.self) * f
            ra.storeBytes(of: RoundBF16.r(p), toByteOffset: 4 * j, as: SIMD8<Float>.self)
            j += 8
        }
        while j < count { a[j] = RoundBF16.r(a[j] * scalar(g[j])); j += 1 }
    }
}

/// How a score GEMM and the softmax after it share the softmax scale. f32 folds the scale into
/// the GEMM (`gemmAlpha = scale`) and softmaxes the result. bf16 follows HF's eager attention on
/// bf16 tensors: the GEMM (`gemmAlpha = 1`) is rounded, multiplied by the scale and rounded
/// again, the softmax runs in f32 and its probabilities are rounded.
public struct SoftmaxScaling: Sendable {
    public let scale: Float
    public let precision: Precision

    public init(scale: Float, storing precision: Precision) {
        self.scale = scale
        self.precision = precision
    }

    /// The alpha the score GEMM runs with.
    public var gemmAlpha: Float { precision == .f32 ? scale : 1 }

    /// Softmax of a row of `count` scores as the GEMM left them; returns the log-sum-exp of the
    /// scaled scores.
    @inline(__always) @discardableResult
    public func softmax(_ x: UnsafeMutablePointer<Float>, count: Int) -> Float {
        if precision == .bf16 { Kernels.roundThenScale(x, count: count, scale: scale) }
        return Kernels.softmax(x, count: count, storing: precision)
    }
}
