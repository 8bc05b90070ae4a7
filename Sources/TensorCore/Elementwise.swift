import Foundation

/// Elementwise kernels, in place on `Matrix`. Each checks shapes and throws `ShapeError`
/// naming both shapes; none allocates.
extension Matrix {
    /// Adds `bias` (one value per column) to every row: `self[i, j] += bias[j]`.
    public mutating func addRowBias(_ bias: [Float]) throws(ShapeError) {
        guard bias.count == cols else {
            throw ShapeError(op: "bias add", shape, Shape(bias.count), hint: "the bias needs one value per output column")
        }
        let c = cols
        storage.withUnsafeMutableBufferPointer { s in
            bias.withUnsafeBufferPointer { b in
                for i in 0..<rows { let row = s.baseAddress! + i * c; for j in 0..<c { row[j] += b[j] } }
            }
        }
    }

    /// Elementwise product: `self[i, j] *= other[i, j]`.
    public mutating func multiply(by other: Matrix) throws(ShapeError) {
        guard other.rows == rows, other.cols == cols else {
            throw ShapeError(op: "elementwise multiply", shape, other.shape, hint: "both operands must have the same shape")
        }
        storage.withUnsafeMutableBufferPointer { s in
            other.storage.withUnsafeBufferPointer { o in for k in s.indices { s[k] *= o[k] } }
        }
    }

    /// Applies `f` to every element.
    @inline(__always)
    public mutating func apply(_ f: (Float) -> Float) {
        storage.withUnsafeMutableBufferPointer { s in for k in s.indices { s[k] = f(s[k]) } }
    }

    /// Logistic sigmoid, `1 / (1 + e^-x)`, in place.
    public mutating func sigmoid() { apply(Activation.sigmoid) }

    /// Softsign, `x / (1 + |x|)`, in place.
    public mutating func softsign() { apply(Activation.softsign) }

    /// RMSNorm over each row: `x / sqrt(mean(x²) + eps) * weight`, in f32 as HF computes it.
    public mutating func rmsNormRows(weight: [Float], eps: Float) throws(ShapeError) {
        try rmsNormRows(weight: .f32(weight), eps: eps, storing: .f32)
    }

    /// Numerically stable softmax of each row, in place.
    public mutating func softmaxRows() {
        let c = cols
        guard c > 0 else { return }
        storage.withUnsafeMutableBufferPointer { s in
            for i in 0..<rows { Kernels.softmax(s.baseAddress! + i * c, count: c) }
        }
    }
}

/// Scalar activations shared by the matrix kernels and the gate.
public enum Activation {
    /// `1 / (1 + e^-x)`, with `FastExp` (within 2 ulp of `expf`; NaN stays NaN).
    @inline(__always) public static func sigmoid(_ x: Float) -> Float { 1 / (1 + FastExp.exp(-x)) }
    @inline(__always) public static func softsign(_ x: Float) -> Float { x / (1 + abs(x)) }
    /// FastDeploy's `scaled_softsign`: `softsign(x) * 2`.
    @inline(__always) public static func scaledSoftsign(_ x: Float) -> Float { 2 * x / (1 + abs(x)) }
    /// `log(1 + eˣ)`, and x itself above 20 (torch's `softplus`, beta 1, threshold 20), through
    /// `FastLog` (within a few ulp of `log1p(exp(x))`; NaN stays NaN).
    @inline(__always) public static func softplus(_ x: Float) -> Float { FastLog.softplus(x) }
}

/// Pointer kernels for the hot path, on one contiguous row (or a strided part of one).
public enum Kernels {
    /// RMSNorm of `count` floats at `x`, in place.
    @inline(__always)
    public static func rmsNorm(_ x: UnsafeMutablePointer<Float>, count: Int, weight: UnsafePointer<Float>, eps: Float) {
        var sum: Float = 0
        for j in 0..<count { sum += x[j] * x[j] }
        let inv = 1 / (sum / Float(count) + eps).squareRoot()
        for j in 0..<count { x[j] = x[j] * inv * weight[j] }
    }

    /// `a[j] *= sigmoid(g[j])` for `count` floats, eight lanes at a time; the same arithmetic as
    /// `Activation.sigmoid` (`a · (1 / (1 + e^-g))`), so every lane matches the scalar tail.
    @inline(__always)
    public static func multiplyBySigmoid(_ a: UnsafeMutablePointer<Float>, gate g: UnsafePointer<Float>, count: Int) {
        multiply(a, by: g, count: count, { 1 / (1 + FastExp.exp(-$0)) }, Activation.sigmoid)
    }

    /// `a[j] *= 2·g[j] / (1 + |g[j]|)` (FastDeploy's scaled_softsign) for `count` floats, eight lanes at a time.
    @inline(__always)
    public static func multiplyByScaledSoftsign(_ a: UnsafeMutablePointer<Float>, gate g: UnsafePointer<Float>, count: Int) {
        multiply(a, by: g, count: count, { g in 2 * g / (1 + g.replacing(with: -g, where: g .< 0)) }, Activation.scaledSoftsign)
    }

    /// `a[j] *= softplus(g[j])` for `count` floats, eight lanes at a time (`FastLog.softplus`).
    @inline(__always)
    public static func multiplyBySoftplus(_ a: UnsafeMutablePointer<Float>, gate g: UnsafePointer<Float>, count: Int) {
        multiply(a, by: g, count: count, FastLog.softplus, Activation.softplus)
    }

    /// `a[j] *= s` for `count` floats, eight lanes at a time: one head's v channels by its head-wise gate.
    @inline(__always)
    public static func scale(_ a: UnsafeMutablePointer<Float>, by s: Float, count: Int) {
        let ra = UnsafeMutableRawPointer(a)
        var j = 0
        while j + 8 <= count {
            ra.storeBytes(of: ra.loadUnaligned(fromByteOffset: 4 * j, as: SIMD8<Float>.self) * s, toByteOffset: 4 * j, as: SIMD8<Float>.self)
            j += 8
        }
        while j < count { a[j] *= s; j += 1 }
    }

    /// `a[j] *= f(g[j])`: `vector` on eight lanes at a time, `scalar` on the tail.
    @inline(__always)
    static func multiply(_ a: UnsafeMutablePointer<Float>, by g: UnsafePointer<Float>, count: Int,
                         _ vector: (SIMD8<Float>) -> SIMD8<Float>, _ scalar: (Float) -> Float) {
        let ra = UnsafeMutableRawPointer(a), rg = UnsafeRawPointer(g)
        var j = 0
        while j + 8 <= count {
            let f = vector(rg.loadUnaligned(fromByteOffset: 4 * j, as: SIMD8<Float>.self))
            ra.storeBytes(of: ra.loadUnaligned(fromByteOffset: 4 * j, as: SIMD8<Float>.self) * f, toByteOffset: 4 * j, as: SIMD8<Float>.self)
            j += 8
        }
        while j < count { a[j] *= scalar(g[j]); j += 1 }
    }

    /// Softmax of `count` floats at `x`, in place: eight lanes at a time with `FastExp`, which is
    /// what the attention kernels spend their non-GEMM time on (one exp per visible score).
    /// A NaN anywhere in the row makes the whole row NaN, as with `expf`. Returns the row's
    /// log-sum-exp, `max + log Σ e^(x − max)` (−∞ for an empty row): what partial attentions
    /// over disjoint keys are merged with.
    @inline(__always) @discardableResult
    public static func softmax(_ x: UnsafeMutablePointer<Float>, count: Int) -> Float {
        guard count > 0 else { return -.infinity }
        typealias V = SIMD8<Float>
        let raw = UnsafeMutableRawPointer(x)
        var j = 0
        var mv = V(repeating: -.infinity), nanSeen = false
        while j + 8 <= count {
            let v = raw.loadUnaligned(fromByteOffset: 4 * j, as: V.self)
            nanSeen = nanSeen || any(v .!= v)
            mv = pointwiseMax(mv, v)
            j += 8
        }
        var m = mv.max()
        while j < count { nanSeen = nanSeen || x[j].isNaN; m = max(m, x[j]); j += 1 }
        if nanSeen { m = .nan }
        var sv = V(repeating: 0)
        j = 0
        while j + 8 <= count {
            let e = FastExp.exp(raw.loadUnaligned(fromByteOffset: 4 * j, as: V.self) - m)
            raw.storeBytes(of: e, toByteOffset: 4 * j, as: V.self)
            sv += e
            j += 8
        }
        var sum = sv.sum()
        while j < count { let e = FastExp.exp(x[j] - m); x[j] = e; sum += e; j += 1 }
        let inv = 1 / sum
        j = 0
        while j + 8 <= count {
            raw.storeBytes(of: raw.loadUnaligned(fromByteOffset: 4 * j, as: V.self) * inv, toByteOffset: 4 * j, as: V.self)
            j += 8
        }
        while j < count { x[j] *= inv; j += 1 }
        return m + Foundation.log(sum)
    }
}

/// `e^x` in f32 without a libm call, so that loops over it vectorize: Cody–Waite reduction
/// `x = n·ln2 + r`, Cephes' degree-6 polynomial for `e^r` on |r| ≤ ln2/2, and `2^n` put
/// straight into the exponent bits. Within 2 ulp of `expf` on [-87, 88] (1.2e-7 relative,
/// measured at 2·10⁵ points); arguments are clamped to that range (so `e^-∞` gives 1.6e-38 and
/// `e^+∞` 1.7e38 instead of 0 and ∞); NaN stays NaN. One polynomial serves one lane (`Float`)
/// and eight (`SIMD8<Float>`), so the vector body and the scalar tail compute the same bits.
public enum FastExp {
    @usableFromInline static let lo: Float = -87, hi: Float = 88
    @usableFromInline static let magic: Float = 12_582_912          // 1.5·2²³: adding it rounds to an integer
    @usableFromInline static let log2e: Float = 1.442_695_040_888_963_4
    @usableFromInline static let ln2hi: Float = 0.693_359_375, ln2lo: Float = -2.121_944_40e-4

    @inlinable @inline(__always)
    public static func exp(_ x: Float) -> Float { polynomial(x) }

    @inlinable @inline(__always)
    public static func exp(_ x: SIMD8<Float>) -> SIMD8<Float> { polynomial(x) }

    @inlinable @inline(__always)
    static func polynomial<V: ExpLanes>(_ x: V) -> V {
        let c = x.clamped(lo, hi)                                       // NaN passes through
        let shifted = c * log2e + magic
        let n = shifted - magic
        let r = (c - n * ln2hi) - n * ln2lo
        var p = V(1.987_569_150_0e-4)
        p = p * r + 1.398_199_950_7e-3
        p = p * r + 8.333_451_907_3e-3
        p = p * r + 4.166_579_589_4e-2
        p = p * r + 1.666_666_545_9e-1
        p = p * r + 5.000_000_120_1e-1
        let er = p * (r * r) + r + 1
        return er * shifted.powerOfTwo(subtracting: magic)
    }
}

/// What `FastExp`'s polynomial needs of one lane or of eight.
public protocol ExpLanes {
    init(_ value: Float)
    static func + (a: Self, b: Self) -> Self
    static func + (a: Self, b: Float) -> Self
    static func - (a: Self, b: Self) -> Self
    static func - (a: Self, b: Float) -> Self
    static func * (a: Self, b: Self) -> Self
    static func * (a: Self, b: Float) -> Self
    /// Each lane clamped to [lo, hi]; NaN stays NaN.
    func clamped(_ lo: Float, _ hi: Float) -> Self
    /// `2^n` where each lane holds `n + magic` (an integer rounded by adding `magic`), built in the
    /// exponent bits without a trapping conversion.
    func powerOfTwo(subtracting magic: Float) -> Self
}

extension Float: ExpLanes {
    @inlinable @inline(__always)
    public func clamped(_ lo: Float, _ hi: Float) -> Float { self < lo ? lo : (self > hi ? hi : self) }
    @inlinable @inline(__always)
    public func powerOfTwo(subtracting magic: Float) -> Float {
        Float(bitPattern: ((bitPattern &- magic.bitPattern) &+ 127) &<< 23)
    }
}

extension SIMD8: ExpLanes where Scalar == Float {
    @inlinable @inline(__always)
    public init(_ value: Float) { self.init(repeating: value) }
    @inlinable @inline(__always)
    public func clamped(_ lo: Float, _ hi: Float) -> SIMD8<Float> {
        let c = replacing(with: lo, where: self .< lo)
        return c.replacing(with: hi, where: c .> hi)
    }
    @inlinable @inline(__always)
    public func powerOfTwo(subtracting magic: Float) -> SIMD8<Float> {
        let k = unsafeBitCast(self, to: SIMD8<UInt32>.self) &- magic.bitPattern
        return unsafeBitCast((k &+ 127) &<< 23, to: SIMD8<Float>.self)
    }
}
