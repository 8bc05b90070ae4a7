import CKernels

/// The instruction set a C kernel runs with. `best` is what this CPU supports; lower levels
/// exist so that tests can run every variant on one machine.
public enum KernelISA: Int32, Sendable, CaseIterable, Comparable, CustomStringConvertible {
    case scalar = 0     // portable C
    case avx2 = 1       // AVX2 + FMA, 8 lanes
    case avx512 = 2     // AVX-512 F/BW/VL, 16 lanes, masked tails

    /// The best level this CPU runs.
    public static var best: KernelISA { KernelISA(rawValue: mlatp_isa_supported()) ?? .scalar }

    /// Every level this CPU runs, lowest first.
    public static var supported: [KernelISA] { allCases.filter { $0 <= best } }

    public static func < (a: KernelISA, b: KernelISA) -> Bool { a.rawValue < b.rawValue }
    public var description: String { ["scalar", "avx2", "avx512"][Int(rawValue)] }
}

/// Bulk f32 ↔ bf16 conversions (vectorized; the same rounding as `BFloat16.init(_:)`), for
/// loading weights and for activations that are stored in bf16 between stages.
public enum BF16 {
    /// dst[i] = bf16(src[i]), rounded to nearest even. `dst` must hold at least `src.count` values.
    public static func round(_ src: UnsafeBufferPointer<Float>, into dst: UnsafeMutableBufferPointer<BFloat16>,
                             isa: KernelISA = .best) {
        precondition(dst.count >= src.count, "BF16.round: \(src.count) values into a buffer of \(dst.count)")
        guard let s = src.baseAddress, let d = dst.baseAddress else { return }
        mlatp_bf16_round(s, d.bits, src.count, isa.rawValue)
    }

    /// dst[i] = Float(src[i]), exact. `dst` must hold at least `src.count` values.
    public static func widen(_ src: UnsafeBufferPointer<BFloat16>, into dst: UnsafeMutableBufferPointer<Float>,
                             isa: KernelISA = .best) {
        precondition(dst.count >= src.count, "BF16.widen: \(src.count) values into a buffer of \(dst.count)")
        guard let s = src.baseAddress, let d = dst.baseAddress else { return }
        mlatp_bf16_widen(s.bits, d, src.count, isa.rawValue)
    }

    /// `rows` rows of `width` bf16 values (row stride `ld`) widened exactly into `dst` (row stride `ldd`).
    public static func widen(rows: Int, width: Int, _ src: UnsafePointer<BFloat16>, ld: Int, into dst: UnsafeMutablePointer<Float>, ldd: Int,
                             isa: KernelISA = .best) {
        mlatp_bf16_widen_2d(rows, width, src.bits, ld, dst, ldd, isa.rawValue)
    }

    /// `rows` rows of `width` f32 values (row stride `ld`) rounded to nearest even into `dst` (row stride `ldd`).
    public static func round(rows: Int, width: Int, _ src: UnsafePointer<Float>, ld: Int, into dst: UnsafeMutablePointer<BFloat16>, ldd: Int,
                             isa: KernelISA = .best) {
        for r in 0..<rows { mlatp_bf16_round(src + r * ld, (dst + r * ldd).bits, width, isa.rawValue) }
    }

    /// `out[i]` = the bf16 sum of `parts[0][i]`, `parts[1][i]`, … in that order: each addition
    /// computed in f32 from its two bf16 operands and rounded to nearest even (a bf16 reduction),
    /// the result kept as f32. Each part must hold `out.count` values.
    public static func chainSum(_ parts: [UnsafePointer<BFloat16>], into out: UnsafeMutableBufferPointer<Float>, isa: KernelISA = .best) {
        guard let o = out.baseAddress, !parts.isEmpty else { return }
        let bits: [UnsafePointer<UInt16>?] = parts.map { $0.bits }
        bits.withUnsafeBufferPointer { mlatp_bf16_chain_sum($0.baseAddress!, parts.count, o, out.count, isa.rawValue) }
    }

    /// Rounds f32 values to bf16 precision in place, keeping them f32 (`x = Float(BFloat16(x))`).
    public static func roundInPlace(_ values: UnsafeMutableBufferPointer<Float>, isa: KernelISA = .best) {
        guard let p = values.baseAddress else { return }
        mlatp_bf16_round_f32(p, p, values.count, isa.rawValue)
    }

    /// `values` rounded to bf16.
    public static func round(_ values: [Float]) -> [BFloat16] {
        [BFloat16](unsafeUninitializedCapacity: values.count) { out, count in
            values.withUnsafeBufferPointer { round($0, into: out) }
            count = values.count
        }
    }

    /// `values` widened to f32.
    public static func widen(_ values: [BFloat16]) -> [Float] {
        [Float](unsafeUninitializedCapacity: values.count) { out, count in
            values.withUnsafeBufferPointer { widen($0, into: out) }
            count = values.count
        }
    }
}

extension UnsafePointer<BFloat16> {
    /// The same memory as the bit patterns the C kernels take.
    @inline(__always) var bits: UnsafePointer<UInt16> { UnsafeRawPointer(self).assumingMemoryBound(to: UInt16.self) }
}

extension UnsafeMutablePointer<BFloat16> {
    @inline(__always) var bits: UnsafeMutablePointer<UInt16> { UnsafeMutableRawPointer(self).assumingMemoryBound(to: UInt16.self) }
}
