/// `log` and `softplus` in f32 on eight lanes without a libm call, so that the softplus gate
/// vectorizes like the others: Cephes' `logf` (frexp into [√½, √2), a degree-8 polynomial),
/// within 2 ulp of `logf` for positive finite arguments.
public enum FastLog {
    typealias V = SIMD8<Float>

    /// Natural log of each lane (positive, finite arguments).
    @inlinable @inline(__always)
    public static func log(_ x: SIMD8<Float>) -> SIMD8<Float> {
        let bits = unsafeBitCast(x, to: SIMD8<UInt32>.self)
        var e = SIMD8<Float>(SIMD8<Int32>(truncatingIfNeeded: (bits &>> 23) & 0xff) &- 126)
        var m = unsafeBitCast((bits & 0x807f_ffff) | 0x3f00_0000, to: SIMD8<Float>.self)      // [0.5, 1)
        let small = m .< 0.707_106_781_186_547_524
        e = e.replacing(with: e - 1, where: small)
        m = m.replacing(with: m + m - 1, where: small).replacing(with: m - 1, where: .!small)
        let z = m * m
        var p = SIMD8<Float>(repeating: 7.037_683_629_2e-2)
        p = p * m - 1.151_461_031_0e-1
        p = p * m + 1.167_699_874_0e-1
        p = p * m - 1.242_014_084_6e-1
        p = p * m + 1.424_932_278_7e-1
        p = p * m - 1.666_805_766_5e-1
        p = p * m + 2.000_071_476_5e-1
        p = p * m - 2.499_999_399_3e-1
        p = p * m + 3.333_333_117_4e-1
        var y = m * z * p
        y += e * -2.121_944_40e-4
        y -= 0.5 * z
        return m + y + e * 0.693_359_375
    }

    /// `softplus(x) = log(1 + eˣ)` on each lane, as torch computes it (beta 1, threshold 20: x
    /// itself above 20): `log1p(eˣ)` with the correction `(u − (w − 1)) / w` for `w = 1 + u`, so
    /// small results keep their relative accuracy; `eˣ` below −15, where they agree to 1e-7.
    @inlinable @inline(__always)
    public static func softplus(_ x: SIMD8<Float>) -> SIMD8<Float> {
        let u = FastExp.exp(x), w = u + 1
        let mid = log(w) + (u - (w - 1)) / w
        return mid.replacing(with: x, where: x .> 20).replacing(with: u, where: x .< -15)
    }

    /// One lane of `softplus(_:)` (the same arithmetic).
    @inlinable @inline(__always)
    public static func softplus(_ x: Float) -> Float { softplus(SIMD8<Float>(repeating: x))[0] }
}
