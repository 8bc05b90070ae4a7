import Foundation
import TensorCore

/// Rotary position embedding for MLA's rope part, computed as HF transformers computes it:
/// inverse frequencies in f32 (plain or YaRN), angles `position · inv_freq` in f32, and
/// cos/sin multiplied by YaRN's attention factor.
public struct Rope: Sendable {
    /// Rotated width per head (`qk_rope_head_dim`); pairs = dim / 2.
    public let dim: Int
    /// Pairs are `(x[2i], x[2i+1])` when true (DeepSeek-V3), `(x[i], x[i + dim/2])` (NeoX) when false.
    public let interleave: Bool
    /// `inv_freq[i]` for pair i.
    public let invFreq: [Float]
    /// YaRN's cos/sin multiplier (1 for plain RoPE).
    public let attentionFactor: Float

    public init(config: MLAConfig) {
        let dim = config.qkRopeHeadDim
        self.dim = dim
        interleave = config.ropeInterleave
        let base = Float(config.ropeTheta)
        let half = dim / 2
        // HF: base ** (arange(0, dim, 2).float() / dim), in f32.
        let posFreqs = (0..<half).map { powf(base, Float(2 * $0) / Float(dim)) }
        guard let s = config.ropeScaling, s.isYarn else {
            invFreq = posFreqs.map { 1 / $0 }
            attentionFactor = 1
            return
        }
        let factor = s.factor
        let theta = config.ropeTheta
        let original = Double(s.originalMaxPositionEmbeddings ?? config.maxPositionEmbeddings)
        if let a = s.attentionFactor {
            attentionFactor = Float(a)
        } else if let m = s.mscale, let all = s.mscaleAllDim, m != 0, all != 0 {
            attentionFactor = Float(Rope.yarnMscale(factor, m) / Rope.yarnMscale(factor, all))
        } else {
            attentionFactor = Float(Rope.yarnMscale(factor, 1))
        }
        // Correction range: which pairs keep their frequency (extrapolate) and which are
        // divided by `factor` (interpolate), with a linear ramp between.
        func correctionDim(_ rotations: Double) -> Double {
            Double(dim) * log(original / (rotations * 2 * Double.pi)) / (2 * log(theta))
        }
        var low = correctionDim(s.betaFast)
        var high = correctionDim(s.betaSlow)
        if s.truncate { low = floor(low); high = ceil(high) }
        low = max(low, 0)
        high = min(high, Double(dim - 1))
        if low == high { high += 0.001 }
        let (lo, hi) = (Float(low), Float(high))
        invFreq = (0..<half).map { i in
            let ramp = min(max((Float(i) - lo) / (hi - lo), 0), 1)
            let extrapolationFactor = 1 - ramp
            let extrapolation = 1 / posFreqs[i]
            let interpolation = 1 / (Float(factor) * posFreqs[i])
            return interpolation * (1 - extrapolationFactor) + extrapolation * extrapolationFactor
        }
    }

    /// DeepSeek's `yarn_get_mscale`: `0.1 · m · ln(scale) + 1` for scale > 1, else 1.
    public static func yarnMscale(_ scale: Double, _ m: Double) -> Double {
        scale <= 1 ? 1 : 0.1 * m * log(scale) + 1
    }

    /// The softmax scale: `qk_head_dim^-0.5`, times `mscale(factor, mscale_all_dim)²` under YaRN
    /// (as HF's `DeepseekV3Attention.__init__`).
    public static func softmaxScale(config: MLAConfig) -> Float {
        var scale = 1 / Double(config.qkHeadDim).squareRoot()
        if let s = config.ropeScaling, s.isYarn, let all = s.mscaleAllDim, all != 0 {
            let m = yarnMscale(s.factor, all)
            scale *= m * m
        }
        return Float(scale)
    }

    /// cos and sin tables for `positions`, stored in `precision` (HF computes them in f32 and casts
    /// them to the activations' dtype: bf16 rounds every entry).
    public func tables(positions: [Int], storing precision: Precision) -> (cos: [Float], sin: [Float]) {
        let (c, s) = tables(positions: positions)
        return (c.map(precision.round), s.map(precision.round))
    }

    /// cos and sin tables for `positions`: `[T, dim/2]` each, row t for token t.
    public func tables(positions: [Int]) -> (cos: [Float], sin: [Float]) {
        let half = dim / 2
        var cosT = [Float](repeating: 0, count: positions.count * half)
        var sinT = cosT
        for (t, p) in positions.enumerated() {
            for i in 0..<half {
                let angle = Float(p) * invFreq[i]
                cosT[t * half + i] = cosf(angle) * attentionFactor
                sinT[t * half + i] = sinf(angle) * attentionFactor
            }
        }
        return (cosT, sinT)
    }

    /// Rotates `count` vectors of width `dim` in place: vector n starts at `x + n·stride` and
    /// uses row `row(n)` of the tables. The interleaved form yields the same dot products as
    /// HF's (HF de-interleaves into halves first; q and k are permuted alike).
    @inline(__always)
    public func apply(_ x: UnsafeMutablePointer<Float>, cos: UnsafePointer<Float>, sin: UnsafePointer<Float>) {
        apply(x, cos: cos, sin: sin, storing: .f32)
    }

    /// `apply` with every product and sum stored in `precision`: in bf16 as HF's rotary functions
    /// on bf16 tensors, `x1·cos`, `x2·sin` and their difference each rounded (three roundings per
    /// output; the negation in `rotate_half` is exact).
    @inline(__always)
    public func apply(_ x: UnsafeMutablePointer<Float>, cos: UnsafePointer<Float>, sin: UnsafePointer<Float>, storing precision: Precision) {
        let half = dim / 2
        if precision == .bf16 {
            let r = precision.round
            for i in 0..<half {
                let (ia, ib) = interleave ? (2 * i, 2 * i + 1) : (i, i + half)
                let a = x[ia], b = x[ib], c = cos[i], s = sin[i]
                x[ia] = r(r(a * c) - r(b * s))
                x[ib] = r(r(b * c) + r(a * s))
            }
            return
        }
        if interleave {
            for i in 0..<half {
                let a = x[2 * i], b = x[2 * i + 1], c = cos[i], s = sin[i]
                x[2 * i] = a * c - b * s
                x[2 * i + 1] = b * c + a * s
            }
        } else {
            for i in 0..<half {
                let a = x[i], b = x[i + half], c = cos[i], s = sin[i]
                x[i] = a * c - b * s
                x[i + half] = b * c + a * s
            }
        }
    }
}
