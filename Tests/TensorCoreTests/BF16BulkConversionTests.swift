import Testing
import TensorCore

/// The vectorized bulk conversions give what the scalar `BFloat16` gives, bit for bit, at every
/// instruction-set level this CPU runs and on every tail length.
@Suite struct BF16BulkConversionTests {
    /// Midpoints and their neighbours for every bf16 pattern, NaNs, infinities, subnormals and
    /// pseudo-random bits.
    static let inputs: [Float] = {
        var bits: [UInt32] = [0, 0x8000_0000, 0x7F80_0000, 0xFF80_0000, 0x7F80_0001, 0xFFC0_0000, 0x7F7F_FFFF, 0x0000_8000, 0x0001_8000]
        for b in stride(from: UInt32(0), through: 0xFFFF, by: 1) { bits += [b << 16 | 0x8000, b << 16 | 0x7FFF, b << 16 | 0x8001] }
        var state: UInt32 = 0x9E37_79B9
        for _ in 0..<100_000 { state = state &* 1_664_525 &+ 1_013_904_223; bits.append(state) }
        return bits.map { Float(bitPattern: $0) }
    }()

    @Test(arguments: KernelISA.supported)
    func roundMatchesScalarOnEveryInput(isa: KernelISA) {
        let expected = Self.inputs.map { BFloat16($0).bitPattern }
        var out = [BFloat16](repeating: BFloat16(bitPattern: 0x1234), count: Self.inputs.count)
        Self.inputs.withUnsafeBufferPointer { src in out.withUnsafeMutableBufferPointer { BF16.round(src, into: $0, isa: isa) } }
        #expect(out.map(\.bitPattern) == expected)
        // In place, kept f32.
        var kept = Self.inputs
        kept.withUnsafeMutableBufferPointer { BF16.roundInPlace($0, isa: isa) }
        #expect(kept.map { $0.bitPattern } == expected.map { UInt32($0) << 16 })
    }

    @Test(arguments: KernelISA.supported)
    func widenIsExactForEveryPattern(isa: KernelISA) {
        let all = (UInt16(0)...0xFFFF).map { BFloat16(bitPattern: $0) }
        var out = [Float](repeating: 7, count: all.count)
        all.withUnsafeBufferPointer { src in out.withUnsafeMutableBufferPointer { BF16.widen(src, into: $0, isa: isa) } }
        #expect(out.map(\.bitPattern) == all.map { UInt32($0.bitPattern) << 16 })
    }

    /// Lengths 0…40 from an odd offset: the full-width loops, the masked or scalar tails, and
    /// nothing written past the end.
    @Test(arguments: KernelISA.supported)
    func everyTailLengthConvertsExactlyItsCount(isa: KernelISA) {
        let src = (0..<48).map { Float($0) * 1.0078125 + 0.00390625 }
        for count in 0...40 {
            var dst = [BFloat16](repeating: BFloat16(bitPattern: 0xABCD), count: 48)
            src.withUnsafeBufferPointer { s in dst.withUnsafeMutableBufferPointer { d in
                BF16.round(UnsafeBufferPointer(rebasing: s[3..<3 + count]), into: UnsafeMutableBufferPointer(rebasing: d[1...]), isa: isa)
            } }
            #expect((0..<count).allSatisfy { dst[1 + $0] == BFloat16(src[3 + $0]) }, "count \(count)")
            #expect(dst[0].bitPattern == 0xABCD && dst[(1 + count)...].allSatisfy { $0.bitPattern == 0xABCD }, "count \(count)")
            var wide = [Float](repeating: -1, count: 48)
            dst.withUnsafeBufferPointer { s in wide.withUnsafeMutableBufferPointer { d in
                BF16.widen(UnsafeBufferPointer(rebasing: s[1..<1 + count]), into: UnsafeMutableBufferPointer(rebasing: d[2...]), isa: isa)
            } }
            #expect((0..<count).allSatisfy { wide[2 + $0] == dst[1 + $0].float }, "count \(count)")
            #expect(wide[..<2].allSatisfy { $0 == -1 } && wide[(2 + count)...].allSatisfy { $0 == -1 }, "count \(count)")
        }
    }
}
