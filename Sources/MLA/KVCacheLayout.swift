import SafeTensors
import TensorCore

/// What the latent cache holds per element (`--kv-cache-dtype`).
public enum KVCacheDType: String, CaseIterable, Codable, Sendable, CustomStringConvertible {
    /// 4 bytes an element, the values as computed.
    case f32
    /// 2 bytes an element, each value rounded to nearest even when its token is appended.
    case bf16
    /// FlashMLA's token layout (`KVCacheLayout`): the latent in e4m3 with an f32 scale per 128
    /// values, k_rope in bf16.
    case fp8

    /// The cache an engine keeps for activations in `precision`: f32 for f32, bf16 for bf16.
    public init(activations precision: Precision) { self = precision == .f32 ? .f32 : .bf16 }

    /// Whether reading a token back gives exactly the values appended, for values stored in
    /// `precision` (a bf16 cache holds bf16 activations exactly; fp8 never is).
    public func isExact(for precision: Precision) -> Bool {
        switch self {
        case .f32: true
        case .bf16: precision == .bf16
        case .fp8: false
        }
    }

    public var description: String { rawValue }
}

/// `--kv-cache-dtype`: a cache dtype, or `auto` for the activations' own (f32 under `--dtype f32`,
/// bf16 under `--dtype bf16`).
public enum KVCacheChoice: String, CaseIterable, Codable, Sendable, CustomStringConvertible {
    case auto, f32, bf16, fp8

    /// The dtype this choice means for activations in `precision`.
    public func resolved(activations precision: Precision) -> KVCacheDType {
        switch self {
        case .auto: KVCacheDType(activations: precision)
        case .f32: .f32
        case .bf16: .bf16
        case .fp8: .fp8
        }
    }

    public var description: String { rawValue }
}

/// How one cached token `[kv_lora + rope]` is laid out in bytes: a pure function of the config
/// and the dtype, for the cache, the plan and the reports alike.
///
/// - f32: `kv_lora + rope` f32 values, `4·(kv_lora + rope)` bytes.
/// - bf16: the same values in bf16, `2·(kv_lora + rope)` bytes.
/// - fp8 (FlashMLA's, vLLM's `fp8_ds_mla`):
///
///       [ kv_lora e4m3 codes | ⌈kv_lora/128⌉ f32 scales | rope bf16 values ]
///       deepseek-v3:  512 B  +  4 × 4 B  +  64 × 2 B  =  656 B
///
///   Group g holds latent values `128·g ..< min(128·(g+1), kv_lora)` with scale
///   `max(amax_g / 448, 2^-126)`; each value is stored as the e4m3 code of `value / scale`
///   (round to nearest even, saturating at ±448) and reads back as `e4m3 · scale`. An all-zero
///   group gets the floor 2^-126 (FLT_MIN) as its scale and reads back as zeros; the floor also keeps
///   a group of tiny values from dividing by a scale that underflowed. A group holding NaN or
///   ±Inf is stored with a NaN scale, so that all its values read back as NaN (e4m3fn has no
///   infinity; a non-finite latent is never turned into a finite one). k_rope is rounded to bf16
///   (NaN and ±Inf kept).
///   Multi-byte fields are little-endian and unaligned whenever kv_lora is not a multiple of 4.
public struct KVCacheLayout: Sendable, Equatable {
    public let dtype: KVCacheDType
    public let lora: Int
    public let rope: Int

    /// Latent values per fp8 scale.
    public static let groupSize = 128
    public init(config: MLAConfig, dtype: KVCacheDType) {
        self.dtype = dtype
        lora = config.kvLoraRank
        rope = config.qkRopeHeadDim
    }

    /// Values per token: kv_lora + rope.
    public var width: Int { lora + rope }
    /// fp8 scales per token.
    public var groups: Int { (lora + Self.groupSize - 1) / Self.groupSize }
    /// Byte offset of the fp8 scales, and of the bf16 rope values.
    var scalesOffset: Int { lora }
    var ropeOffset: Int { lora + 4 * groups }

    public var bytesPerToken: Int {
        switch dtype {
        case .f32: 4 * width
        case .bf16: 2 * width
        case .fp8: lora + 4 * groups + 2 * rope
        }
    }

    /// Stores `count` f32 rows `x [count, width]` as tokens at `tokens` (`count · bytesPerToken` bytes).
    func encode(_ x: UnsafePointer<Float>, count: Int, into tokens: UnsafeMutableRawPointer) {
        switch dtype {
        case .f32:
            tokens.copyMemory(from: x, byteCount: 4 * count * width)
        case .bf16:
            BF16.round(UnsafeBufferPointer(start: x, count: count * width),
                       into: UnsafeMutableBufferPointer(start: tokens.assumingMemoryBound(to: BFloat16.self), count: count * width))
        case .fp8:
            for t in 0..<count {
                let row = x + t * width, token = tokens + t * bytesPerToken
                for g in 0..<groups {
                    let first = g * Self.groupSize, n = min(Self.groupSize, lora - first)
                    let scale = E4M3.quantize(row + first, count: n, into: token + first)
                    token.storeBytes(of: scale.bitPattern.littleEndian, toByteOffset: scalesOffset + 4 * g, as: UInt32.self)
                }
                for r in 0..<rope {
                    token.storeBytes(of: BFloat16(row[lora + r]).bitPattern.littleEndian, toByteOffset: ropeOffset + 2 * r, as: UInt16.self)
                }
            }
        }
    }

    /// Reads `count` tokens from `tokens` back as f32 rows `[count, width]` into `out`.
    func decode(_ tokens: UnsafeRawPointer, count: Int, into out: UnsafeMutablePointer<Float>) {
        switch dtype {
        case .f32:
            out.update(from: tokens.assumingMemoryBound(to: Float.self), count: count * width)
        case .bf16:
            BF16.widen(UnsafeBufferPointer(start: tokens.assumingMemoryBound(to: BFloat16.self), count: count * width),
                       into: UnsafeMutableBufferPointer(start: out, count: count * width))
        case .fp8:
            ScalarConversion.fp8E4M3Table.withUnsafeBufferPointer { table in
                for t in 0..<count {
                    let token = tokens + t * bytesPerToken, row = out + t * width
                    let codes = token.assumingMemoryBound(to: UInt8.self)
                    for g in 0..<groups {
                        let first = g * Self.groupSize, end = min(first + Self.groupSize, lora)
                        let scale = Float(bitPattern: UInt32(littleEndian: token.loadUnaligned(fromByteOffset: scalesOffset + 4 * g, as: UInt32.self)))
                        for i in first..<end { row[i] = table[Int(codes[i])] * scale }
                    }
                    for r in 0..<rope {
                        let bits = UInt16(littleEndian: token.loadUnaligned(fromByteOffset: ropeOffset + 2 * r, as: UInt16.self))
                        row[lora + r] = BFloat16(bitPattern: bits).float
                    }
                }
            }
        }
    }
}

/// FP8 E4M3 as the cache stores the latent: a group of values sharing one f32 scale, encoded by
/// the same quantizer as fp8 weights (`FP8Quantization`: nearest even, saturating at ±448).
enum E4M3 {
    /// The code of a finite `y`, rounded to nearest even, saturating at ±448.
    static func encode(_ y: Float) -> UInt8 { FP8Quantization.encode(y) }

    /// Stores `count` values of `x` as e4m3 codes of `x / scale` at `codes` and returns the
    /// scale: `max(amax / 448, 2^-126)`, or NaN (codes 0) when a value is not finite.
    static func quantize(_ x: UnsafePointer<Float>, count: Int, into codes: UnsafeMutableRawPointer) -> Float {
        let values = UnsafeBufferPointer(start: x, count: count)
        let amax = FP8Quantization.amax(values)                       // NaN or ∞ when a value is not finite
        guard amax.isFinite else {
            codes.initializeMemory(as: UInt8.self, repeating: 0, count: count)
            return .nan
        }
        let scale = max(amax / FP8Quantization.maxFinite, .leastNormalMagnitude)
        FP8Quantization.encode(values, into: UnsafeMutableBufferPointer(start: codes.assumingMemoryBound(to: UInt8.self), count: count), scale: scale)
        return scale
    }
}
