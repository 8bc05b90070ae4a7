import Testing
import TensorCore
import TensorParallel
import TestSupport

/// The parallel layers in bf16: weights held in bf16 (half the bytes), rounded once from the same
/// seeded values at every tp; one rounding of `acc + b` per output; and the bf16 reduction as a
/// chain of bf16 additions in rank order.
@Suite struct BF16LayerTests {
    static var source: SeededWeights { SeededWeights(seed: 11) }
    static func r(_ x: Float) -> Float { BFloat16(x).float }

    @Test(arguments: [1, 2, 4])
    func seededBF16WeightsAreTheRoundedF32ValuesAtEveryTp(tp: Int) throws {
        for rank in 0..<tp {
            let shard = Shard(rank: rank, size: tp)
            let f32 = try ColumnParallelLinear(name: "c", inFeatures: 48, outFeatures: 32, bias: true, shard: shard, source: Self.source,
                                               initializer: .random(std: 0.1))
            let bf16 = try ColumnParallelLinear(name: "c", inFeatures: 48, outFeatures: 32, bias: true, shard: shard, source: Self.source,
                                                initializer: .random(std: 0.1), storage: BF16Storage.self)
            #expect(bf16.weight.precision == .bf16 && bf16.bias?.precision == .bf16)
            #expect(bf16.weight.widened().storage == f32.weight.widened().storage.map(Self.r))
            #expect(bf16.localBytes * 2 == f32.localBytes)
            // Row-parallel: each rank's column block, rounded element by element.
            let row = try RowParallelLinear(name: "o", inFeatures: 64, outFeatures: 24, bias: false, shard: shard, source: Self.source,
                                            initializer: .random(std: 0.1), storage: BF16Storage.self)
            let whole = try RowParallelLinear(name: "o", inFeatures: 64, outFeatures: 24, bias: false, shard: .whole, source: Self.source,
                                              initializer: .random(std: 0.1), storage: BF16Storage.self).weight.widened()
            #expect(row.weight.widened() == whole.columns(row.inRange))
        }
    }

    @Test func aLinearOutputIsTheAccumulatedProductPlusBiasRoundedOnce() throws {
        let x = try Matrix(rows: 5, cols: 48, values: SeededInit.fill(name: "x", seed: 5, rows: 0..<5, cols: 0..<48, globalCols: 48, std: 1))
        for order in [WeightOrder.outIn, .inOut] {
            let layer = try ReplicatedLinear(name: "r", inFeatures: 48, outFeatures: 20, bias: true, source: Self.source,
                                             initializer: .random(std: 0.1), biasInitializer: .random(std: 3), order: order, storage: BF16Storage.self)
            var y = Matrix(rows: 5, cols: 20)
            try layer.forward(x, into: &y)
            let w = layer.weightOutIn.widened(), b = layer.bias!.widened(), xr = x.storage.map(Self.r)
            for i in 0..<5 {
                for j in 0..<20 {
                    var acc: Double = 0
                    for k in 0..<48 { acc += Double(xr[i * 48 + k]) * Double(w[j, k]) }
                    // One rounding of acc + b (to f32 first, then bf16): within one bf16 step of the exact value.
                    let want = Self.r(Float(acc) + b[j])
                    #expect(abs(y[i, j] - want) <= abs(want) * 0x1p-8 && Self.r(y[i, j]) == y[i, j], "\(order) [\(i), \(j)]")
                }
            }
        }
    }

    @Test func theBF16ReductionIsAChainOfBF16AdditionsInRankOrder() throws {
        let n = 300
        func values(_ r: Int) -> [Float] {
            let scale: Float = r % 2 == 0 ? 1.0037 : 0.013
            return (0..<n).map { j in Float((j * 37 + r * 101) % 1999 - 999) * scale }
        }
        let partials = try (0..<4).map { try Matrix(rows: 1, cols: n, values: values($0)) }
        let sum = BF16Reduction.sum(partials)
        for j in 0..<n {
            var s = Self.r(partials[0][0, j])
            for p in partials.dropFirst() { s = Self.r(s + Self.r(p[0, j])) }
            #expect(sum[0, j].bitPattern == s.bitPattern, "element \(j)")
        }
        // The order of the additions shows in the bits (why every rank sums in rank order), and a
        // bf16 reduction is not an f32 sum rounded once.
        let reversed = BF16Reduction.sum(partials.reversed())
        #expect(zip(sum.storage, reversed.storage).contains { $0 != $1 })
        let once = (0..<n).map { j in Self.r(partials.reduce(Float(0)) { $0 + $1[0, j] }) }
        #expect(zip(sum.storage, once).contains { $0 != $1 })
        #expect(BF16Reduction.sum([partials[1]]).storage == partials[1].storage.map(Self.r))
    }

    @Test func theRowLayerRoundsOnceAfterTheBiasAtTpOne() throws {
        let h = try Matrix(rows: 3, cols: 64, values: SeededInit.fill(name: "h", seed: 2, rows: 0..<3, cols: 0..<64, globalCols: 64, std: 1))
        let layer = try RowParallelLinear(name: "o", inFeatures: 64, outFeatures: 24, bias: true, shard: .whole, source: Self.source,
                                          initializer: .random(std: 0.1), biasInitializer: .random(std: 2), storage: BF16Storage.self)
        var partial = Matrix(rows: 3, cols: 24), y = Matrix(rows: 3, cols: 24)
        try layer.partial(h, into: &partial)
        try layer.forward(h, into: &y, collectives: .local)
        let b = layer.bias!.widened()
        #expect(y.storage == (0..<72).map { Self.r(partial.storage[$0] + b[$0 % 24]) })
        // Rounding the partial first (a second rounding) gives other bits somewhere.
        #expect(y.storage != (0..<72).map { Self.r(Self.r(partial.storage[$0]) + b[$0 % 24]) })
    }
}
