import Testing
import TensorCore
import TensorParallel
import TestSupport

@Suite struct ShardTests {
    @Test func rangesTileTheWidthInRankOrder() throws {
        let ranges = try (0..<4).map { try Shard(rank: $0, size: 4).range(of: 12, for: "w") }
        #expect(ranges == [0..<3, 3..<6, 6..<9, 9..<12])
    }

    @Test func indivisibleWidthNamesWidthAndTp() {
        #expect(throws: TPError.indivisible(name: "w", width: 10, tp: 4)) { try Shard(rank: 0, size: 4).range(of: 10, for: "w") }
        let text = TPError.indivisible(name: "w", width: 10, tp: 4).description
        #expect(text.contains("10") && text.contains("tp=4") && text.contains("1, 2, 5, 10"))
    }

    @Test func seededValuesDoNotDependOnTp() throws {
        let full = try SeededInit.fill(name: "t", seed: 3, rows: 0..<6, cols: 0..<4, globalCols: 4, std: 1)
        for tp in [2, 3, 6] {
            var joined: [Float] = []
            for r in 0..<tp {
                let rows = r * 6 / tp ..< (r + 1) * 6 / tp
                joined += try SeededInit.fill(name: "t", seed: 3, rows: rows, cols: 0..<4, globalCols: 4, std: 1)
            }
            #expect(joined == full)
        }
        // A column block equals the same columns of the full tensor.
        let block = try SeededInit.fill(name: "t", seed: 3, rows: 0..<6, cols: 1..<3, globalCols: 4, std: 1)
        var expected: [Float] = []
        for r in 0..<6 { expected.append(full[r * 4 + 1]); expected.append(full[r * 4 + 2]) }
        #expect(block == expected)
    }

    @Test func seededValuesDependOnSeedAndNameAndHaveTheRequestedSpread() throws {
        let a = try SeededInit.fill(name: "a", seed: 1, rows: 0..<1, cols: 0..<20_000, globalCols: 20_000, std: 1)
        let b = try SeededInit.fill(name: "b", seed: 1, rows: 0..<1, cols: 0..<4, globalCols: 20_000, std: 1)
        let c = try SeededInit.fill(name: "a", seed: 2, rows: 0..<1, cols: 0..<4, globalCols: 20_000, std: 1)
        #expect(Array(a.prefix(4)) != b && Array(a.prefix(4)) != c)
        let mean = a.reduce(0, +) / Float(a.count)
        let variance = a.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Float(a.count)
        #expect(abs(mean) < 0.03 && abs(variance - 1) < 0.05)
    }

    /// The column → row pair summed over simulated ranks equals the unsharded product, and
    /// the bias counts once (each rank's partial has no bias; it is added after the sum).
    @Test func columnThenRowPartialsSumToTheUnshardedResult() throws {
        let source = SeededWeights(seed: 9)
        let x = try Matrix(rows: 3, cols: 8, values: try SeededInit.fill(name: "x", seed: 9, rows: 0..<3, cols: 0..<8, globalCols: 8, std: 1))
        func layers(_ s: Shard) throws -> (ColumnParallelLinear, RowParallelLinear) {
            (try ColumnParallelLinear(name: "w1", inFeatures: 8, outFeatures: 12, bias: true, shard: s, source: source, initializer: .random(std: 0.3)),
             try RowParallelLinear(name: "w2", inFeatures: 12, outFeatures: 5, bias: true, shard: s, source: source,
                                   initializer: .random(std: 0.3), biasInitializer: .random(std: 1)))
        }
        let (c1, r1) = try layers(.whole)
        var h = Matrix(rows: 3, cols: 12)
        try c1.forward(x, into: &h)
        var reference = Matrix(rows: 3, cols: 5)
        try r1.forward(h, into: &reference, collectives: .local)
        for tp in [2, 3, 4] {
            var sum = Matrix(rows: 3, cols: 5)
            for r in 0..<tp {
                let (c, row) = try layers(Shard(rank: r, size: tp))
                #expect(c.weight.shape == [12 / tp, 8] && row.weight.shape == [5, 12 / tp])
                var hr = Matrix(rows: 3, cols: 12 / tp)
                try c.forward(x, into: &hr)
                let partial = try Gemm.linear(hr, weight: row.weight)   // what each rank contributes
                for k in sum.storage.indices { sum.storage[k] += partial.storage[k] }
            }
            try sum.addRowBias(r1.bias!)
            #expect(try Comparison(sum, reference: reference).relative < 1e-5)
        }
    }

    @Test func layersRejectWidthsTpDoesNotDivide() {
        #expect(throws: TPError.self) {
            _ = try ColumnParallelLinear(name: "w1", inFeatures: 4, outFeatures: 10, bias: false, shard: Shard(rank: 0, size: 4),
                                         source: SeededWeights(seed: 1), initializer: .random(std: 1))
        }
        #expect(throws: TPError.self) {
            _ = try RowParallelLinear(name: "w2", inFeatures: 10, outFeatures: 4, bias: false, shard: Shard(rank: 0, size: 3),
                                      source: SeededWeights(seed: 1), initializer: .random(std: 1))
        }
    }
}
