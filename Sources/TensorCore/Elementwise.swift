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
        guard weight.count == cols else {
            throw ShapeError(op: "RMSNorm", shape, Shape(weight.count), hint: "the norm weight needs one value per column")
        }
        let c = cols
        storage.withUnsafeMutableBufferPointer { s in
            weight.withUnsafeBufferPointer { w in
                for i in 0..<rows {
                    Kernels.rmsNorm(s.baseAddress! + i * c, count: c, weight: w.baseAddress!, eps: eps)
                }
            }
        }
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
    @inline(__always) public static func sigmoid(_ x: Float) -> Float { 1 / (1 + expf(-x)) }
    @inline(__always) public static func softsign(_ x: Float) -> Float { x / (1 + abs(x)) }
    /// FastDeploy's `scaled_softsign`: `softsign(x) * 2`.
    @inline(__always) public static func scaledSoftsign(_ x: Float) -> Float { 2 * x / (1 + abs(x)) }
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

    /// Softmax of `count` floats at `x`, in place.
    @inline(__always)
    public static func softmax(_ x: UnsafeMutablePointer<Float>, count: Int) {
        var m = -Float.infinity
        for j in 0..<count { m = max(m, x[j]) }
        var sum: Float = 0
        for j in 0..<count { let e = expf(x[j] - m); x[j] = e; sum += e }
        let inv = 1 / sum
        for j in 0..<count { x[j] *= inv }
    }
}
