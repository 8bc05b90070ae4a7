import Foundation
import Testing
import SafeTensors

/// F64 tensors (the float64 golden outputs) read as Float, rounded to nearest even.
@Suite("Float64 reads")
struct Float64ReadTests {
    private static func bits(_ value: Double) -> UInt64 { value.bitPattern }

    /// Little-endian bytes of Float64 values.
    private static func f64Bytes(_ values: [Double]) -> [UInt8] {
        values.flatMap { value in withUnsafeBytes(of: value.bitPattern.littleEndian) { Array($0) } }
    }

    @Test func f64DecodesHandKnownValuesRoundingToNearestEven() {
        #expect(ScalarConversion.f64ToFloat(Self.bits(1.0)) == 1.0)
        #expect(ScalarConversion.f64ToFloat(Self.bits(-2.5)) == -2.5)
        #expect(ScalarConversion.f64ToFloat(Self.bits(1 + 0x1p-24)) == 1.0, "tie rounds down to even")
        #expect(ScalarConversion.f64ToFloat(Self.bits(1 + 3 * 0x1p-24)) == 1 + 0x1p-22, "tie rounds up to even")
        #expect(ScalarConversion.f64ToFloat(Self.bits(1 + 0x1p-24 + 0x1p-40)) == 1 + 0x1p-23, "above the tie rounds up")
        #expect(ScalarConversion.f64ToFloat(Self.bits(0.1)) == Float(0.1))
        #expect(ScalarConversion.f64ToFloat(Self.bits(.greatestFiniteMagnitude)) == .infinity)
        #expect(ScalarConversion.f64ToFloat(Self.bits(-1e300)) == -.infinity)
        #expect(ScalarConversion.f64ToFloat(Self.bits(0x1p-149)) == Float.leastNonzeroMagnitude)
        #expect(ScalarConversion.f64ToFloat(Self.bits(0x1p-150)) == 0, "half the smallest subnormal ties to zero")
        #expect(ScalarConversion.f64ToFloat(Self.bits(1e-300)) == 0)
        let negativeZero = ScalarConversion.f64ToFloat(Self.bits(-0.0))
        #expect(negativeZero == 0 && negativeZero.sign == .minus)
        #expect(ScalarConversion.f64ToFloat(Self.bits(.infinity)) == .infinity)
        #expect(ScalarConversion.f64ToFloat(Self.bits(.nan)).isNaN)
    }

    /// For random doubles across Float's range, the result is a nearest Float, and on a tie the even one.
    @Test func f64DecodingPicksTheNearestFloatForRandomDoubles() {
        var generator = SeededGenerator(seed: 64)
        var wrong: [Double] = []
        for _ in 0..<100_000 {
            // Exponents 2^-160 … 2^130: subnormal, normal and overflowing Floats, both signs.
            let exponent = UInt64.random(in: 863...1153, using: &generator)
            let bits = (UInt64.random(in: 0...1, using: &generator) << 63) | (exponent << 52)
                | UInt64.random(in: 0..<(1 << 52), using: &generator)
            let value = Double(bitPattern: bits)
            let result = ScalarConversion.f64ToFloat(bits)
            // Overflow exactly when |value| is at least halfway between the largest Float and 2^128.
            let overflows = abs(value) >= Double(Float.greatestFiniteMagnitude) + 0x1p103
            if result.isInfinite != overflows { wrong.append(value) }
            if overflows { continue }
            let error = abs(Double(result) - value)
            let neighbours = [result.nextUp, result.nextDown].filter(\.isFinite)
            let best = neighbours.allSatisfy { error <= abs(Double($0) - value) }
            let tie = neighbours.contains { error == abs(Double($0) - value) }
            let even = result.significandBitPattern & 1 == 0
            if !best || (tie && !even) { wrong.append(value) }
        }
        let count = wrong.count
        #expect(count == 0, "not the nearest Float for \(count) doubles, e.g. \(wrong.prefix(3))")
    }

    @Test func f64TensorReadsAsFloatByBlocksCountingEightBytesPerElement() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        // A [3, 4] matrix whose element (r, c) is r + c / 10 (not exact in Float except c = 0).
        let values = (0..<3).flatMap { row in (0..<4).map { Double(row) + Double($0) / 10 } }
        var writer = SafeTensorsWriter()
        try writer.add("attn_output", dtype: .F64, shape: [3, 4], bytes: Self.f64Bytes(values))
        try writer.add("bias", dtype: .F64, shape: [4], bytes: Self.f64Bytes([0.5, -0.25, 1e-3, 1e40]))
        try writer.write(to: directory.file("expected_f64.safetensors"))
        let file = try SafeTensorsFile(path: directory.file("expected_f64.safetensors"))

        #expect(try file.readFloats("attn_output") == values.map { Float($0) })
        #expect(file.bytesRead == 12 * 8)
        #expect(try file.readFloats("attn_output", rows: 1..<3, columns: 2..<4) == [1.2, 1.3, 2.2, 2.3].map { Float($0) })
        #expect(file.bytesRead == 12 * 8 + 4 * 8, "a column block reads only each row's slice")
        #expect(try file.readFloats("bias", rows: 1..<4) == [-0.25, Float(1e-3), .infinity])
    }
}
