import Testing
import TensorCore

/// f32 → bf16 rounding and bf16 → f32 widening, one value at a time.
@Suite struct BFloat16Tests {
    static func bf16(_ f32Bits: UInt32) -> UInt16 { BFloat16(Float(bitPattern: f32Bits)).bitPattern }

    @Test func tiesRoundToEvenBothWays() {
        // 1 + 2^-8 lies halfway between 1 (0x3F80, even) and 1 + 2^-7 (0x3F81): down to even.
        #expect(Self.bf16(0x3F80_8000) == 0x3F80)
        // 1 + 3·2^-8 lies halfway between 0x3F81 (odd) and 0x3F82 (even): up to even.
        #expect(Self.bf16(0x3F81_8000) == 0x3F82)
        #expect(Self.bf16(0xBF80_8000) == 0xBF80 && Self.bf16(0xBF81_8000) == 0xBF82)
        // Just off the tie goes to the nearer neighbour.
        #expect(Self.bf16(0x3F80_8001) == 0x3F81 && Self.bf16(0x3F81_7FFF) == 0x3F81)
    }

    /// For every finite bf16 b: the f32 just below the midpoint above b rounds to b, the one just above it
    /// to b's successor, and the midpoint itself to whichever of the two is even.
    @Test func everyMidpointRoundsToNearestEven() {
        for b in UInt32(0)...0xFFFF where BFloat16(bitPattern: UInt16(b)).isFinite {
            let mid = b << 16 | 0x8000
            let next = UInt16(b + 1)          // the successor in magnitude (0x7F7F + 1 = Inf)
            #expect(Self.bf16(mid - 1) == UInt16(b))
            #expect(Self.bf16(mid + 1) == next)
            #expect(Self.bf16(mid) == (b & 1 == 0 ? UInt16(b) : next), "midpoint above \(String(b, radix: 16))")
        }
    }

    @Test func nanStaysQuietNaNWithSignAndTopPayload() {
        // Payload only in the dropped half: truncation alone would give ±Inf.
        #expect(Self.bf16(0x7F80_0001) == 0x7FC0 && Self.bf16(0xFF80_0001) == 0xFFC0)
        #expect(Self.bf16(0x7FC0_0000) == 0x7FC0 && Self.bf16(0xFFC0_0000) == 0xFFC0)
        #expect(Self.bf16(0x7FA1_2345) == 0x7FE1)           // signaling, payload kept, made quiet
        #expect(Self.bf16(0x7FFF_FFFF) == 0x7FFF)           // must not carry into the sign
        for payload in stride(from: UInt32(1), to: 0x7F_FFFF, by: 4099) {
            for sign in [UInt32(0), 0x8000_0000] {
                let b = BFloat16(Float(bitPattern: sign | 0x7F80_0000 | payload))
                #expect(b.isNaN && b.bitPattern & 0x8000 == UInt16(sign >> 16))
            }
        }
    }

    @Test func infinitiesAndOverflowAtTheTop() {
        #expect(BFloat16(Float.infinity).bitPattern == 0x7F80 && BFloat16(-Float.infinity).bitPattern == 0xFF80)
        #expect(BFloat16(Float.greatestFiniteMagnitude).bitPattern == 0x7F80)
        #expect(BFloat16(-Float.greatestFiniteMagnitude).bitPattern == 0xFF80)
        // The largest f32 below the midpoint past bf16's largest finite stays finite.
        #expect(Self.bf16(0x7F7F_7FFF) == 0x7F7F && BFloat16.greatestFiniteMagnitude.float == 3.3895314e38)
        #expect(BFloat16.infinity.isInfinite && !BFloat16.greatestFiniteMagnitude.isInfinite)
    }

    @Test func subnormalsAndSignedZero() {
        #expect(Self.bf16(0x0000_0001) == 0x0000)            // f32's smallest subnormal: below half of bf16's
        #expect(Self.bf16(0x0000_8000) == 0x0000)            // tie between 0 and 0x0001: to even
        #expect(Self.bf16(0x0000_8001) == 0x0001)
        #expect(Self.bf16(0x0001_8000) == 0x0002)            // tie between 0x0001 and 0x0002
        #expect(Self.bf16(0x007F_FFFF) == 0x0080)            // the largest subnormal carries into the normals
        #expect(Self.bf16(0x8000_0000) == 0x8000)            // -0 keeps its sign
        #expect(BFloat16.leastNonzeroMagnitude.float == Float(bitPattern: 0x0001_0000) && BFloat16.leastNonzeroMagnitude.isSubnormal)
    }

    /// Widening is exact and rounding it back gives the same bits, for all 65,536 patterns;
    /// NaNs stay NaN (a signaling one comes back quiet).
    @Test func everyPatternRoundTrips() {
        for bits in UInt16(0)...0xFFFF {
            let b = BFloat16(bitPattern: bits)
            let f = b.float
            #expect(f.bitPattern == UInt32(bits) << 16)
            let back = BFloat16(f)
            if b.isNaN {
                #expect(back.isNaN && back.bitPattern == bits | 0x40 && f.isNaN)
            } else {
                #expect(back.bitPattern == bits, "pattern \(String(bits, radix: 16))")
            }
        }
    }
}
