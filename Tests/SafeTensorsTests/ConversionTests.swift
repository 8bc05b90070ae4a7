import Testing
import SafeTensors

@Suite("Scalar conversions")
struct ConversionTests {
    @Test func bf16DecodesHandKnownValues() {
        #expect(ScalarConversion.bf16ToFloat(0x3F80) == 1.0)
        #expect(ScalarConversion.bf16ToFloat(0xC000) == -2.0)
        #expect(ScalarConversion.bf16ToFloat(0x7F80) == .infinity)
        #expect(ScalarConversion.bf16ToFloat(0xFF80) == -.infinity)
        #expect(ScalarConversion.bf16ToFloat(0x7FC0).isNaN)
        #expect(ScalarConversion.bf16ToFloat(0x0001) == Float(bitPattern: 0x0001_0000))
    }

    @Test func f16DecodesHandKnownValuesIncludingSubnormalsAndInfinity() {
        #expect(ScalarConversion.f16ToFloat(0x3C00) == 1.0)
        #expect(ScalarConversion.f16ToFloat(0x0001) == 0x1p-24)
        #expect(ScalarConversion.f16ToFloat(0x03FF) == 1023 * 0x1p-24)
        #expect(ScalarConversion.f16ToFloat(0x0400) == 0x1p-14)
        #expect(ScalarConversion.f16ToFloat(0x7BFF) == 65504)
        #expect(ScalarConversion.f16ToFloat(0xFC00) == -.infinity)
        #expect(ScalarConversion.f16ToFloat(0x7C00) == .infinity)
        #expect(ScalarConversion.f16ToFloat(0x7E00).isNaN)
        #expect(ScalarConversion.f16ToFloat(0x8000).sign == .minus)
        #expect(ScalarConversion.f16ToFloat(0x8000) == 0)
    }

    @Test func fp8E4M3DecodesHandKnownValues() {
        #expect(ScalarConversion.fp8E4M3ToFloat(0x38) == 1.0)
        #expect(ScalarConversion.fp8E4M3ToFloat(0x01) == 0x1p-9)
        #expect(ScalarConversion.fp8E4M3ToFloat(0x07) == 7 * 0x1p-9)
        #expect(ScalarConversion.fp8E4M3ToFloat(0x08) == 0x1p-6)
        #expect(ScalarConversion.fp8E4M3ToFloat(0x7E) == 448)
        #expect(ScalarConversion.fp8E4M3ToFloat(0xFE) == -448)
        #expect(ScalarConversion.fp8E4M3ToFloat(0x7F).isNaN)
        #expect(ScalarConversion.fp8E4M3ToFloat(0xFF).isNaN)
        #expect(ScalarConversion.fp8E4M3ToFloat(0x78) == 256, "e4m3fn has no infinity: exponent 15 is a normal binade")
        let negativeZero = ScalarConversion.fp8E4M3ToFloat(0x80)
        #expect(negativeZero == 0 && negativeZero.sign == .minus)
    }

    @Test func fp8TableMatchesScalarDecoderForAll256Codes() {
        let mismatches = (0...255).filter { code in
            let direct = ScalarConversion.fp8E4M3ToFloat(UInt8(code))
            let table = ScalarConversion.fp8E4M3Table[code]
            return !(direct.bitPattern == table.bitPattern || (direct.isNaN && table.isNaN))
        }
        #expect(mismatches.isEmpty)
    }

    @Test func f16RoundTripsEveryNonNaNBitPattern() {
        let mismatches = (0...0xFFFF).filter { bits in
            let value = ScalarConversion.f16ToFloat(UInt16(bits))
            return !value.isNaN && ScalarConversion.floatToF16(value) != UInt16(bits)
        }
        #expect(mismatches.isEmpty)
    }

    @Test func bf16RoundTripsEveryNonNaNBitPattern() {
        let mismatches = (0...0xFFFF).filter { bits in
            let value = ScalarConversion.bf16ToFloat(UInt16(bits))
            return !value.isNaN && ScalarConversion.floatToBF16(value) != UInt16(bits)
        }
        #expect(mismatches.isEmpty)
    }

    @Test func bf16EncodingRoundsToNearestEven() {
        #expect(ScalarConversion.floatToBF16(1 + 0x1p-8) == 0x3F80, "tie rounds down to even mantissa")
        #expect(ScalarConversion.floatToBF16(1 + 3 * 0x1p-8) == 0x3F82, "tie rounds up to even mantissa")
        #expect(ScalarConversion.floatToBF16(1 + 0x1p-8 + 0x1p-20) == 0x3F81, "above the tie rounds up")
        #expect(ScalarConversion.floatToBF16(.greatestFiniteMagnitude) == 0x7F80, "overflow becomes infinity")
        #expect(ScalarConversion.bf16ToFloat(ScalarConversion.floatToBF16(.nan)).isNaN)
    }

    @Test func f16EncodingRoundsToNearestEvenAndSaturatesToInfinity() {
        #expect(ScalarConversion.floatToF16(65504) == 0x7BFF)
        #expect(ScalarConversion.floatToF16(65519) == 0x7BFF)
        #expect(ScalarConversion.floatToF16(65520) == 0x7C00, "halfway to 65536 rounds to even, i.e. infinity")
        #expect(ScalarConversion.floatToF16(1 + 0x1p-11) == 0x3C00, "tie rounds to even")
        #expect(ScalarConversion.floatToF16(1 + 3 * 0x1p-11) == 0x3C02)
        #expect(ScalarConversion.floatToF16(0x1p-25) == 0x0000, "half the smallest subnormal ties to zero")
        #expect(ScalarConversion.floatToF16(1.5 * 0x1p-25) == 0x0001)
        #expect(ScalarConversion.floatToF16(3 * 0x1p-25) == 0x0002, "subnormal tie rounds to even")
        #expect(ScalarConversion.floatToF16(-0.0) == 0x8000)
        #expect(ScalarConversion.floatToF16(-.infinity) == 0xFC00)
        #expect(ScalarConversion.f16ToFloat(ScalarConversion.floatToF16(.nan)).isNaN)
    }

    #if arch(x86_64) || arch(arm64)
    @Test func f16ConversionsAgreeWithSwiftFloat16() {
        let decodeMismatches = (0...0xFFFF).filter { bits in
            let ours = ScalarConversion.f16ToFloat(UInt16(bits))
            let reference = Float(Float16(bitPattern: UInt16(bits)))
            return !(ours.bitPattern == reference.bitPattern || (ours.isNaN && reference.isNaN))
        }
        #expect(decodeMismatches.isEmpty)
        var generator = SeededGenerator(seed: 7)
        var encodeMismatches: [Float] = []
        for _ in 0..<100_000 {
            // Half the samples cover all floats, half the range around binary16 (2^-26 … 2^17).
            let bits = Bool.random(using: &generator)
                ? UInt32.random(in: 0...UInt32.max, using: &generator)
                : UInt32.random(in: 0x3280_0000...0x4800_0000, using: &generator) | (Bool.random(using: &generator) ? 0x8000_0000 : 0)
            let value = Float(bitPattern: bits)
            if !value.isNaN && ScalarConversion.floatToF16(value) != Float16(value).bitPattern {
                encodeMismatches.append(value)
            }
        }
        #expect(encodeMismatches.isEmpty)
    }
    #endif
}
