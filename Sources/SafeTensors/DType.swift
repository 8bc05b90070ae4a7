/// Element types that may appear in a safetensors header.
///
/// The raw value is the exact string used in the header's `"dtype"` field.
/// Every case parses and is validated for size, but only some can be
/// converted to `Float` (see ``isFloatConvertible``) or to `Int`
/// (see ``isIntegerConvertible``). Sub-byte types (`F4`, `F6_*`) are not
/// supported and are reported as unknown dtypes.
public enum DType: String, Sendable, CaseIterable, Hashable {
    case BOOL
    case U8
    case I8
    case F8_E4M3
    case F8_E5M2
    case F8_E8M0
    case I16
    case U16
    case F16
    case BF16
    case I32
    case U32
    case F32
    case I64
    case U64
    case F64

    /// Size in bytes of one element.
    public var byteSize: Int {
        switch self {
        case .BOOL, .U8, .I8, .F8_E4M3, .F8_E5M2, .F8_E8M0: return 1
        case .I16, .U16, .F16, .BF16: return 2
        case .I32, .U32, .F32: return 4
        case .I64, .U64, .F64: return 8
        }
    }

    /// Whether ``SafeTensorsFile/readFloats(_:rows:columns:into:)`` can convert this type.
    public var isFloatConvertible: Bool {
        switch self {
        case .F32, .F64, .F16, .BF16, .F8_E4M3: return true
        default: return false
        }
    }

    /// Whether ``SafeTensorsFile/readInts(_:)`` can convert this type.
    public var isIntegerConvertible: Bool {
        self == .I32 || self == .I64
    }

    /// Comma-separated list of every dtype string this module accepts, for error messages.
    public static var supportedList: String {
        allCases.map(\.rawValue).joined(separator: ", ")
    }
}

/// Conversions between the formats used in checkpoints and `Float`.
///
/// The low-precision decoders are exact (every source value is representable in `Float`);
/// the float64 decoder and the encoders round to nearest, ties to even, as PyTorch does.
public enum ScalarConversion {
    /// Decodes an IEEE 754 binary64 bit pattern, rounding to the nearest Float (ties to even):
    /// magnitudes beyond Float's range become infinity, below its subnormals zero; NaN stays NaN.
    @inlinable
    public static func f64ToFloat(_ bits: UInt64) -> Float {
        Float(Double(bitPattern: bits))
    }

    /// Decodes a bfloat16 bit pattern: the 16 bits become the high half of a Float32.
    @inlinable
    public static func bf16ToFloat(_ bits: UInt16) -> Float {
        Float(bitPattern: UInt32(bits) << 16)
    }

    /// Decodes an IEEE 754 binary16 bit pattern, including subnormals, infinities and NaN payloads.
    @inlinable
    public static func f16ToFloat(_ bits: UInt16) -> Float {
        let sign = UInt32(bits & 0x8000) << 16
        let exponent = UInt32(bits >> 10) & 0x1F
        let mantissa = UInt32(bits & 0x3FF)
        if exponent == 0 {
            // Zero or subnormal: mantissa × 2^-24, exact in Float.
            let magnitude = Float(mantissa) * 0x1p-24
            return sign != 0 ? -magnitude : magnitude
        }
        if exponent == 0x1F {
            return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))
        }
        return Float(bitPattern: sign | ((exponent + 112) << 23) | (mantissa << 13))
    }

    /// Decodes an FP8 E4M3 ("e4m3fn") byte: bias 7, subnormals, no infinities,
    /// and `0x7F` / `0xFF` are NaN.
    @inlinable
    public static func fp8E4M3ToFloat(_ bits: UInt8) -> Float {
        let negative = bits & 0x80 != 0
        let exponent = Int((bits >> 3) & 0x0F)
        let mantissa = UInt32(bits & 0x07)
        let magnitude: Float
        if exponent == 0x0F && mantissa == 0x07 {
            magnitude = .nan
        } else if exponent == 0 {
            magnitude = Float(mantissa) * 0x1p-9
        } else {
            magnitude = Float(bitPattern: (UInt32(exponent + 120) << 23) | (mantissa << 20))
        }
        return negative ? -magnitude : magnitude
    }

    /// Lookup table of all 256 FP8 E4M3 values, used on hot paths.
    public static let fp8E4M3Table: [Float] = (0...255).map { fp8E4M3ToFloat(UInt8($0)) }

    /// Encodes a Float as bfloat16, rounding to nearest even; NaN stays a (quiet) NaN.
    @inlinable
    public static func floatToBF16(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        if value.isNaN {
            return UInt16(truncatingIfNeeded: bits >> 16) | 0x0040
        }
        let rounded = bits &+ 0x7FFF &+ ((bits >> 16) & 1)
        return UInt16(truncatingIfNeeded: rounded >> 16)
    }

    /// Encodes a Float as IEEE binary16, rounding to nearest even; values beyond
    /// the range become infinity, tiny values become subnormals or zero.
    @inlinable
    public static func floatToF16(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        let sign = UInt16(truncatingIfNeeded: (bits >> 16) & 0x8000)
        let exponent = Int((bits >> 23) & 0xFF)
        let mantissa = bits & 0x7F_FFFF
        if exponent == 0xFF {
            return sign | 0x7C00 | (mantissa != 0 ? 0x0200 | UInt16(truncatingIfNeeded: mantissa >> 13) : 0)
        }
        let halfExponent = exponent - 127 + 15
        if halfExponent >= 31 {
            return sign | 0x7C00
        }
        if halfExponent <= 0 {
            if halfExponent < -10 { return sign }
            let full = mantissa | 0x80_0000
            let shift = UInt32(14 - halfExponent)
            var half = full >> shift
            let remainder = full & ((1 << shift) - 1)
            let halfway = UInt32(1) << (shift - 1)
            if remainder > halfway || (remainder == halfway && half & 1 == 1) { half += 1 }
            return sign | UInt16(truncatingIfNeeded: half)
        }
        var half = UInt32(halfExponent) << 10 | (mantissa >> 13)
        let remainder = mantissa & 0x1FFF
        if remainder > 0x1000 || (remainder == 0x1000 && half & 1 == 1) { half += 1 }
        return sign | UInt16(truncatingIfNeeded: half)
    }
}
