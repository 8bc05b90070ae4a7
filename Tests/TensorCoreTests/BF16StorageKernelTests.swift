import Foundation
import Testing
import TensorCore

/// The element-wise kernels with `storing:`: f32 gives the plain kernel's bits; bf16 gives each
/// op computed in f32 and rounded where torch rounds a bf16 tensor op, checked element by element
/// against the same formula written with `BFloat16` scalars.
@Suite struct BF16StorageKernelTests {
    static func r(_ x: Float) -> Float { BFloat16(x).float }
    /// Values on a grid bf16 does not hold, both signs, with NaN, ±Inf and ties among them.
    static let values: [Float] = (0..<211).map { Float($0 - 105) * 0.0731 + 0.000_17 }
        + [.nan, .infinity, -.infinity, 1 + 0x1p-8, 1 + 3 * 0x1p-8, 3e38, -0.0, 20.5, -16.75]

    static func same(_ a: [Float], _ b: [Float]) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { $0.bitPattern == $1.bitPattern || ($0.isNaN && $1.isNaN) }
    }

    /// The eight-lane rounding every bf16 element-wise kernel uses gives `BFloat16.init`'s bits for
    /// every upper half (all signs, exponents, NaN payloads and ±Inf) with the lower halves that
    /// decide a rounding: zero, just below, at and just above the tie, and all ones.
    @Test func eightLaneRoundingMatchesTheScalarOnEveryUpperHalf() {
        let lows: [UInt32] = [0, 0x7fff, 0x8000, 0x8001, 0xffff, 0x1234]
        var mismatches = 0
        for high in UInt32(0)...0xffff {
            for low in lows {
                let x = Float(bitPattern: high << 16 | low)
                let lanes = SIMD8<Float>(repeating: x)
                let vector = Kernels.roundedToBF16(lanes)[3], scalar = BFloat16(x).float
                if vector.bitPattern != scalar.bitPattern { mismatches += 1 }
            }
        }
        #expect(mismatches == 0)
    }

    @Test(arguments: [1, 7, 8, 9, 24, 220])
    func gateProductsRoundTheActivationThenTheProduct(count: Int) {
        let g = Array(Self.values.prefix(count)), a = (0..<count).map { Float($0 % 11) * 0.137 - 0.71 }
        let kernels: [(String, (UnsafeMutablePointer<Float>, UnsafePointer<Float>, Int, Precision) -> Void, (Float) -> Float)] = [
            ("sigmoid", { Kernels.multiplyBySigmoid($0, gate: $1, count: $2, storing: $3) }, { Self.r(Activation.sigmoid($0)) }),
            ("scaled_softsign", { Kernels.multiplyByScaledSoftsign($0, gate: $1, count: $2, storing: $3) },
             { Self.r(2 * $0 / Self.r(1 + abs($0))) }),                     // 1 + |g| rounded before the division
            ("softplus", { Kernels.multiplyBySoftplus($0, gate: $1, count: $2, storing: $3) }, { Self.r(Activation.softplus($0)) }),
        ]
        for (name, kernel, act) in kernels {
            var bf16 = a, f32 = a
            bf16.withUnsafeMutableBufferPointer { o in g.withUnsafeBufferPointer { kernel(o.baseAddress!, $0.baseAddress!, count, .bf16) } }
            f32.withUnsafeMutableBufferPointer { o in g.withUnsafeBufferPointer { kernel(o.baseAddress!, $0.baseAddress!, count, .f32) } }
            let want = zip(a, g).map { Self.r($0 * act($1)) }
            #expect(Self.same(bf16, want), "\(name), \(count) lanes: \(zip(bf16, want).filter { $0.bitPattern != $1.bitPattern }.prefix(3))")
            var plain = a
            plain.withUnsafeMutableBufferPointer { o in g.withUnsafeBufferPointer { p in
                switch name {
                case "sigmoid": Kernels.multiplyBySigmoid(o.baseAddress!, gate: p.baseAddress!, count: count)
                case "scaled_softsign": Kernels.multiplyByScaledSoftsign(o.baseAddress!, gate: p.baseAddress!, count: count)
                default: Kernels.multiplyBySoftplus(o.baseAddress!, gate: p.baseAddress!, count: count)
                }
            } }
            #expect(Self.same(f32, plain), "\(name): storing f32 must be the plain kernel")
            #expect(!Self.same(f32, bf16), "\(name): bf16 storage must round")
        }
    }

    @Test func rmsNormRoundsTheNormalizedValueThenTheProductWithTheWeight() throws {
        let x = Array(Self.values.prefix(96)), w = BF16.widen(BF16.round((0..<48).map { 1 + Float($0 % 9) * 0.0137 }))
        var m = try Matrix(rows: 2, cols: 48, values: x), plain = m
        try m.rmsNormRows(weight: .bf16(BF16.round(w)), eps: 1e-6, storing: .bf16)
        try plain.rmsNormRows(weight: w, eps: 1e-6)
        for row in 0..<2 {
            let v = Array(x[row * 48 ..< (row + 1) * 48])
            let inv = 1 / (v.reduce(0) { $0 + $1 * $1 } / 48 + 1e-6).squareRoot()
            let want = (0..<48).map { Self.r(Self.r(v[$0] * inv) * w[$0]) }
            #expect(Self.same(Array(m.storage[row * 48 ..< (row + 1) * 48]), want))
        }
        #expect(!Self.same(m.storage, plain.storage) && m.storage.allSatisfy { Self.r($0) == $0 })
    }

    @Test func bf16SoftmaxRoundsScoresScaleAndProbabilities() {
        let scores = Array(Self.values.prefix(40))
        let scaling = SoftmaxScaling(scale: 0.1352, storing: .bf16)
        #expect(scaling.gemmAlpha == 1 && SoftmaxScaling(scale: 0.1352, storing: .f32).gemmAlpha == 0.1352)
        var row = scores
        let lse = row.withUnsafeMutableBufferPointer { scaling.softmax($0.baseAddress!, count: 40) }
        var want = scores.map { Self.r(Self.r($0) * 0.1352) }
        let wantLSE = want.withUnsafeMutableBufferPointer { Kernels.softmax($0.baseAddress!, count: 40) }
        want = want.map(Self.r)
        #expect(Self.same(row, want) && lse == wantLSE)
        var f32 = scores
        f32.withUnsafeMutableBufferPointer { _ = Kernels.softmax($0.baseAddress!, count: 40, storing: .f32) }
        var plain = scores
        plain.withUnsafeMutableBufferPointer { _ = Kernels.softmax($0.baseAddress!, count: 40) }
        #expect(Self.same(f32, plain))
    }

    @Test func stridedRoundingTouchesOnlyItsBlock() {
        var x = (0..<30).map { Float($0) * 0.0731 + 0.000_17 }
        let before = x
        x.withUnsafeMutableBufferPointer { Kernels.round($0.baseAddress! + 1, rows: 3, cols: 4, ld: 10, to: .bf16) }
        for i in 0..<30 {
            let inBlock = (i - 1) / 10 < 3 && (i - 1) >= 0 && (i - 1) % 10 < 4
            #expect(x[i] == (inBlock ? Self.r(before[i]) : before[i]), "element \(i)")
        }
        var m = try! Matrix(rows: 3, cols: 10, values: before), f = m
        m.round(to: .bf16)
        f.round(to: .f32)
        #expect(m.storage == before.map(Self.r) && f.storage == before)
    }

    @Test func anyVectorRoundsOnceAndReadsBackExactly() {
        let v = Array(Self.values.prefix(20))
        let b = AnyVector(v, storedAs: .bf16), f = AnyVector(v, storedAs: .f32)
        #expect(b.bytes == 40 && f.bytes == 80 && b.count == 20 && b.precision == .bf16)
        #expect(Self.same(b.widened(), v.map(Self.r)) && Self.same(f.widened(), v))
        #expect(b.withFloats { Self.same(Array($0), v.map(Self.r)) })
        var m = Matrix(rows: 2, cols: 20)
        try? m.addRowBias(b)
        #expect(Self.same(Array(m.storage[20...]), v.map(Self.r)))
    }

    /// A bf16 reduction's chain of additions, at every instruction set and tail length, for 1–4 parts.
    @Test(arguments: KernelISA.supported)
    func chainSumRoundsEveryAdditionInOrderAtEveryLevel(isa: KernelISA) {
        for n in [0, 1, 7, 8, 9, 15, 16, 17, 33, 220] {
            let parts = (0..<4).map { r in BF16.round((0..<n).map { Self.values[($0 * 7 + r * 13) % Self.values.count] * (r % 2 == 0 ? 1 : 0.037) }) }
            for count in 1...4 {
                var out = [Float](repeating: .nan, count: n)
                let joined = parts.prefix(count).flatMap { $0 }                  // [count][n], rank-major
                joined.withUnsafeBufferPointer { all in
                    let base = all.baseAddress ?? UnsafePointer(bitPattern: 2)!
                    out.withUnsafeMutableBufferPointer { BF16.chainSum((0..<count).map { base + $0 * n }, into: $0, isa: isa) }
                }
                let want = (0..<n).map { i in parts.prefix(count).dropFirst().reduce(parts[0][i].float) { Self.r($0 + $1[i].float) } }
                #expect(Self.same(out, want), "\(isa), \(n) values, \(count) parts")
            }
        }
    }

    @Test func precisionRoundsOneValue() {
        for x in Self.values {
            #expect(Precision.f32.round(x).bitPattern == x.bitPattern)
            #expect(Precision.bf16.round(x).bitPattern == Self.r(x).bitPattern || x.isNaN)
        }
    }
}
