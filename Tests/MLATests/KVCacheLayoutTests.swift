import Foundation
@testable import MLA
import SafeTensors
import TensorCore
import TensorParallel
import Testing

/// What one cached token costs and what it reads back as, in each cache dtype.
@Suite struct KVCacheLayoutTests {
    func config(lora: Int, rope: Int) -> MLAConfig {
        MLAConfig(hiddenSize: 64, numAttentionHeads: 2, qLoraRank: nil, kvLoraRank: lora, qkNopeHeadDim: 8, qkRopeHeadDim: rope, vHeadDim: 8)
    }

    /// Appends `rows` (`[n, lora + rope]`) to a fresh one-slot cache of `dtype` and reads them back.
    func roundTrip(_ rows: [Float], config c: MLAConfig, dtype: KVCacheDType) throws -> (cache: KVCache, back: [Float]) {
        let width = c.kvLoraRank + c.qkRopeHeadDim, n = rows.count / width
        let cache = KVCache(config: c, sequences: 1, dtype: dtype)
        cache.append(slot: 0, from: try Matrix(rows: n, cols: width, values: rows), rows: 0..<n)
        let keys = cache.rows(slot: 0)
        var back: [Float] = []
        for t in keys.tiles { back += Array(UnsafeBufferPointer(start: keys.tile(t), count: t.count * width)) }
        return (cache, back)
    }

    @Test func aDeepSeekV3TokenIs2304BytesInF32And1152InBF16And656InFP8() {
        let c = Presets.deepseekV3
        #expect(KVCacheDType.allCases.map { KVCache.bytesPerToken(config: c, dtype: $0) } == [2304, 1152, 656])
        let fp8 = KVCacheLayout(config: c, dtype: .fp8)
        #expect(fp8.groups == 4 && fp8.scalesOffset == 512 && fp8.ropeOffset == 528)
    }

    /// kv_lora e4m3 bytes + ⌈kv_lora/128⌉ f32 scales + rope bf16 values, for shapes that are not
    /// deepseek-v3's (a partial last group included).
    @Test(arguments: [(64, 16, 64 + 4 + 32), (200, 8, 200 + 8 + 16), (129, 64, 129 + 8 + 128), (512, 0, 512 + 16), (1, 2, 1 + 4 + 4)])
    func fp8TokenBytesFollowTheFormulaForOtherShapes(lora: Int, rope: Int, bytes: Int) {
        let c = config(lora: lora, rope: rope)
        #expect(KVCache.bytesPerToken(config: c, dtype: .fp8) == bytes)
        #expect(KVCache.bytesPerToken(config: c, dtype: .bf16) == 2 * (lora + rope))
        #expect(KVCache.bytesPerToken(config: c, dtype: .f32) == 4 * (lora + rope))
    }

    /// e4m3 codes: nearest even at ties, subnormals in steps of 2^-9, saturation at ±448.
    @Test func e4m3RoundsToNearestEvenAndSaturatesAt448() {
        let cases: [(Float, UInt8)] = [
            (1, 0x38), (1.0625, 0x38), (1.1875, 0x3a), (1.125, 0x39), (-1.0625, 0xb8),      // ties go to the even mantissa
            (448, 0x7e), (464, 0x7e), (1e6, 0x7e), (-500, 0xfe),                           // saturate, never NaN (0x7f)
            (0x1p-6, 0x08), (0x1p-9, 0x01), (0x1p-10, 0x00), (3 * 0x1p-10, 0x02), (7.5 * 0x1p-9, 0x08),
            (0, 0x00), (-0.0, 0x80),
        ]
        for (y, code) in cases { #expect(E4M3.encode(y) == code, "\(y) → \(String(E4M3.encode(y), radix: 16)), want \(String(code, radix: 16))") }
    }

    /// Every latent value reads back within e4m3's rounding of `value / scale` (relative 2^-4 for
    /// a normal code, 2^-10·scale below 2^-6·scale), with scale = amax/448 of its group of 128;
    /// k_rope within bf16's 2^-8; values that are codes × scale come back exactly.
    @Test(arguments: [(512, 64), (200, 8)])
    func anFP8TokenReadsBackWithinE4M3RoundingOfItsGroupScale(lora: Int, rope: Int) throws {
        let c = config(lora: lora, rope: rope), width = lora + rope, n = 5
        var rows = try SeededInit.fill(name: "latent", seed: 3, rows: 0..<n, cols: 0..<width, globalCols: width, std: 1)
        for j in 0..<width { rows[width + j] *= Float(pow(10, Double(j % 9) - 4)) }        // token 1: nine decades within a group
        for j in 0..<lora {                                                                   // token 2: e4m3 values × 2^-7 (amax 3.5: scale 2^-7)
            rows[2 * width + j] = (j % 128 == 0 ? 448 : ScalarConversion.fp8E4M3ToFloat(UInt8((j * 37) % 127))) * 0x1p-7
        }
        let (_, back) = try roundTrip(rows, config: c, dtype: .fp8)
        for t in 0..<n {
            for g in stride(from: 0, to: lora, by: 128) {
                let group = g ..< min(g + 128, lora)
                let scale = max(group.map { abs(rows[t * width + $0]) }.max()! / 448, .leastNormalMagnitude)
                for i in group {
                    let x = rows[t * width + i], y = back[t * width + i]
                    let bound = (0x1p-4 + 0x1p-20) * abs(x) + 0x1p-10 * scale * (1 + 0x1p-20)
                    #expect(abs(y - x) <= bound, "token \(t) value \(i): \(x) read back as \(y), bound \(bound)")
                }
            }
            for r in lora..<width { #expect(back[t * width + r] == BFloat16(rows[t * width + r]).float, "token \(t) rope \(r - lora)") }
        }
        for j in 0..<lora { #expect(back[2 * width + j] == rows[2 * width + j], "token 2 value \(j) is a code × its scale") }
    }

    @Test func aBF16CacheHoldsEachValueRoundedToNearestEven() throws {
        let c = config(lora: 64, rope: 16)
        let rows = try SeededInit.fill(name: "latent", seed: 5, rows: 0..<3, cols: 0..<80, globalCols: 80, std: 1)
        let (cache, back) = try roundTrip(rows, config: c, dtype: .bf16)
        #expect(back == rows.map { BFloat16($0).float })
        #expect(cache.bytes == 3 * 2 * 80)
    }

    /// An all-zero group stores the floor scale 2^-126 and reads back zeros.
    @Test func anAllZeroGroupStoresTheFloorScaleAndReadsBackZeros() throws {
        let c = config(lora: 256, rope: 4)
        var rows = [Float](repeating: 0, count: 260)
        for k in 0..<127 { rows[128 + k] = ScalarConversion.fp8E4M3ToFloat(UInt8(k)) }
        rows[255] = 448                                                                        // amax 448: scale 1
        let (cache, back) = try roundTrip(rows, config: c, dtype: .fp8)
        #expect(back[0..<128].allSatisfy { $0 == 0 } && back[128..<256] == rows[128..<256])
        #expect(cache.bytes == 256 + 8 + 8)
        let layout = KVCacheLayout(config: c, dtype: .fp8)
        var token = [UInt8](repeating: 0, count: layout.bytesPerToken)
        rows.withUnsafeBufferPointer { x in token.withUnsafeMutableBytes { layout.encode(x.baseAddress!, count: 1, into: $0.baseAddress!) } }
        let scale0 = token.withUnsafeBytes { Float(bitPattern: $0.loadUnaligned(fromByteOffset: 256, as: UInt32.self)) }
        #expect(scale0 == .leastNormalMagnitude)
    }

    /// A NaN or ±Inf in a latent group makes every value of that group read back as NaN (e4m3fn has
    /// no infinity; nothing non-finite turns finite); other groups and k_rope are untouched, k_rope
    /// keeping its own NaN or ±Inf as bf16 does. The bf16 cache keeps NaN and ±Inf as they are.
    @Test(arguments: [Float.nan, .infinity, -.infinity])
    func aNonFiniteLatentValuePoisonsOnlyItsGroup(bad: Float) throws {
        let c = config(lora: 256, rope: 4)
        var rows = (0..<260).map { Float($0 % 13) - 6 }
        rows[130] = bad
        rows[257] = bad
        let (_, back) = try roundTrip(rows, config: c, dtype: .fp8)
        #expect(back[128..<256].allSatisfy { $0.isNaN })
        #expect(back[0..<128].allSatisfy { $0.isFinite } && back[256] == rows[256] && back[258] == rows[258])
        #expect(bad.isNaN ? back[257].isNaN : back[257] == bad)
        let (_, b16) = try roundTrip(rows, config: c, dtype: .bf16)
        #expect(bad.isNaN ? b16[130].isNaN && b16[257].isNaN : b16[130] == bad && b16[257] == bad)
    }

    /// Tokens appended one step at a time under a DCP share read back as when appended at once.
    @Test func tokensAppendedInStepsAndSharesReadBackInOrder() throws {
        let c = config(lora: 130, rope: 6), width = 136
        let rows = try SeededInit.fill(name: "latent", seed: 7, rows: 0..<300, cols: 0..<width, globalCols: width, std: 1)
        let m = try Matrix(rows: 300, cols: width, values: rows)
        let (_, whole) = try roundTrip(rows, config: c, dtype: .fp8)
        let cache = KVCache(config: c, sequences: 1, share: TokenShare(index: 1, count: 3), dtype: .fp8)
        for r in [0..<1, 1..<140, 140..<141, 141..<300] { cache.append(slot: 0, from: m, rows: r) }
        #expect(cache.lengths == [300] && cache.localLengths == [100] && cache.bytes == 100 * (130 + 8 + 12))
        let keys = cache.rows(slot: 0)
        #expect(keys.tiles == [0..<100])
        let local = Array(UnsafeBufferPointer(start: keys.tile(0..<100), count: 100 * width))
        var want: [Float] = []
        for j in 0..<100 { let t = 1 + 3 * j; want += whole[t * width ..< (t + 1) * width] }
        #expect(local == want)
    }
}
