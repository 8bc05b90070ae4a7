/// A bfloat16 value: the top 16 bits of an IEEE f32 (sign, 8 exponent bits, 7 mantissa bits),
/// so widening to `Float` is exact and rounding from `Float` only drops mantissa bits.
///
/// Rounding is to nearest, ties to even, as PyTorch's `tensor.to(torch.bfloat16)` does: finite
/// values past the largest bf16 (3.3895e38) round to ±Inf, subnormals round like any other value,
/// and a NaN stays a NaN (made quiet, sign and top payload bits kept) rather than turning into
/// Inf when its payload sits only in the dropped bits.
@frozen
public struct BFloat16: Hashable, Sendable, CustomStringConvertible {
    public var bitPattern: UInt16

    @inlinable public init(bitPattern: UInt16) { self.bitPattern = bitPattern }

    /// `value` rounded to nearest even.
    @inlinable
    public init(_ value: Float) {
        let u = value.bitPattern
        if u & 0x7fff_ffff > 0x7f80_0000 {
            bitPattern = UInt16(truncatingIfNeeded: u >> 16) | 0x40
        } else {
            bitPattern = UInt16(truncatingIfNeeded: (u &+ 0x7fff &+ ((u >> 16) & 1)) >> 16)
        }
    }

    /// The exact f32 value.
    @inlinable public var float: Float { Float(bitPattern: UInt32(bitPattern) << 16) }

    public var isNaN: Bool { bitPattern & 0x7fff > 0x7f80 }
    public var isInfinite: Bool { bitPattern & 0x7fff == 0x7f80 }
    public var isFinite: Bool { bitPattern & 0x7f80 != 0x7f80 }
    public var isSubnormal: Bool { bitPattern & 0x7f80 == 0 && bitPattern & 0x7f != 0 }

    public static let infinity = BFloat16(bitPattern: 0x7f80)
    /// The largest finite bf16, 0x7F7F = 3.3895314e38.
    public static let greatestFiniteMagnitude = BFloat16(bitPattern: 0x7f7f)
    /// The smallest positive subnormal, 0x0001 = 2^-133.
    public static let leastNonzeroMagnitude = BFloat16(bitPattern: 0x0001)

    public var description: String { float.description }
}

extension Float {
    /// The exact value of a bf16.
    @inlinable public init(_ value: BFloat16) { self = value.float }
}
