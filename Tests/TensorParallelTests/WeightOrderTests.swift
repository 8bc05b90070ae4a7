import Testing
import TensorCore
import TensorParallel
import TestSupport

/// A layer built with its weight kept `[in, out]` computes what the `[out, in]` layer computes,
/// reports the same shapes and bytes, and exports the same `[out, in]` weight.
@Suite struct WeightOrderTests {
    static var source: SeededWeights { SeededWeights(seed: 11) }

    static func input(_ rows: Int, _ cols: Int) throws -> Matrix {
        try Matrix(rows: rows, cols: cols, values: try SeededInit.fill(name: "x", seed: 5, rows: 0..<rows, cols: 0..<cols, globalCols: cols, std: 1))
    }

    @Test func transposeSwapsRowsAndColumns() throws {
        let m = try Matrix(rows: 2, cols: 3, values: [1, 2, 3, 4, 5, 6])
        let t = m.transposed()
        #expect(t.shape == [3, 2] && t.storage == [1, 4, 2, 5, 3, 6])
        let big = try Self.input(70, 131)                                      // more than one 64-tile each way
        #expect(big.transposed().transposed() == big)
        #expect(big.transposed()[129, 67] == big[67, 129])
    }

    @Test(arguments: [1, 5, 70])
    func replicatedAndColumnLayersAgreeInBothOrders(tokens: Int) throws {
        let x = try Self.input(tokens, 48)
        let a = try ReplicatedLinear(name: "r", inFeatures: 48, outFeatures: 20, bias: true, source: Self.source, initializer: .random(std: 0.1))
        let b = try ReplicatedLinear(name: "r", inFeatures: 48, outFeatures: 20, bias: true, source: Self.source, initializer: .random(std: 0.1),
                                     order: .inOut)
        var ya = Matrix(rows: tokens, cols: 20), yb = Matrix(rows: tokens, cols: 20)
        try a.forward(x, into: &ya)
        try b.forward(x, into: &yb)
        #expect(allClose(ya.storage, yb.storage, rtol: 1e-5, atol: 1e-6))
        #expect(b.weight.shape == [48, 20] && b.localShape == a.localShape && b.localShape == [20, 48])
        #expect(b.localBytes == a.localBytes && b.weightOutIn == a.weight)

        let shard = Shard(rank: 1, size: 4)
        let c = try ColumnParallelLinear(name: "c", inFeatures: 48, outFeatures: 32, bias: true, shard: shard, source: Self.source,
                                         initializer: .random(std: 0.1))
        let d = try ColumnParallelLinear(name: "c", inFeatures: 48, outFeatures: 32, bias: true, shard: shard, source: Self.source,
                                         initializer: .random(std: 0.1), order: .inOut)
        var yc = Matrix(rows: tokens, cols: 8), yd = Matrix(rows: tokens, cols: 8)
        try c.forward(x, into: &yc)
        try d.forward(x, into: &yd)
        #expect(allClose(yc.storage, yd.storage, rtol: 1e-5, atol: 1e-6))
        #expect(d.localShape == [8, 48] && d.localOut == 8 && d.localIn == 48 && d.weightOutIn == c.weight)
    }

    @Test(arguments: [1, 5, 70])
    func rowLayerAgreesInBothOrdersWithItsBiasAddedOnce(tokens: Int) throws {
        let shard = Shard(rank: 2, size: 4)
        let x = try Self.input(tokens, 16)                                     // this rank's [T, in/tp] columns
        let a = try RowParallelLinear(name: "o", inFeatures: 64, outFeatures: 24, bias: true, shard: shard, source: Self.source,
                                      initializer: .random(std: 0.1))
        let b = try RowParallelLinear(name: "o", inFeatures: 64, outFeatures: 24, bias: true, shard: shard, source: Self.source,
                                      initializer: .random(std: 0.1), order: .inOut)
        var ya = Matrix(rows: tokens, cols: 24), yb = Matrix(rows: tokens, cols: 24), pb = Matrix(rows: tokens, cols: 24)
        try a.forward(x, into: &ya, collectives: .local)
        try b.forward(x, into: &yb, collectives: .local)
        try b.partial(x, into: &pb)
        #expect(allClose(ya.storage, yb.storage, rtol: 1e-5, atol: 1e-6))
        try pb.addRowBias(b.bias!)
        #expect(allClose(pb.storage, yb.storage, rtol: 1e-6, atol: 1e-7))
        #expect(b.localShape == [24, 16] && b.weight.shape == [16, 24] && b.weightOutIn == a.weight)
    }

    @Test func emptyBatchGivesZeroRowsInBothOrders() throws {
        let b = try ReplicatedLinear(name: "r", inFeatures: 8, outFeatures: 4, bias: false, source: Self.source,
                                     initializer: .random(std: 0.1), order: .inOut)
        var y = Matrix(rows: 0, cols: 4)
        try b.forward(Matrix(rows: 0, cols: 8), into: &y)
        #expect(y.rows == 0)
        var wrong = Matrix(rows: 2, cols: 5)
        #expect(throws: ShapeError.self) { try b.forward(Matrix(rows: 2, cols: 8), into: &wrong) }
    }
}

/// A seeded source writes `[in, out]` blocks directly, with the same numbers as a transposed `block`.
@Suite struct TransposedBlockTests {
    @Test func seededTransposedBlockEqualsTheTransposeOfTheBlock() throws {
        let source = SeededWeights(seed: 3)
        for (rows, cols) in [(0..<5, 0..<7), (2..<9, 3..<6), (0..<1, 0..<4)] {
            let block = try source.block("w", shape: Shape(9, 7), rows: rows, cols: cols, initializer: .random(std: 0.5))
            let direct = try source.blockTransposed("w", shape: Shape(9, 7), rows: rows, cols: cols, initializer: .random(std: 0.5))
            #expect(direct == block.transposed(), "rows \(rows) cols \(cols)")
            #expect(direct.shape == Shape(cols.count, rows.count))
        }
    }

    /// A source without its own transposed reader gets the default (`block`, then a transpose).
    struct Plain: WeightSource {
        func block(_ name: String, shape: Shape, rows: Range<Int>, cols: Range<Int>, initializer: Initializer) throws -> Matrix {
            try Matrix(rows: rows.count, cols: cols.count, values: (0..<(rows.count * cols.count)).map(Float.init))
        }
        func vector(_ name: String, count: Int, range: Range<Int>, initializer: Initializer) throws -> [Float] {
            [Float](repeating: 1, count: range.count)
        }
    }

    @Test func theDefaultTransposesTheBlock() throws {
        let t = try Plain().blockTransposed("w", shape: Shape(2, 3), rows: 0..<2, cols: 0..<3, initializer: .random(std: 1))
        #expect(t.shape == Shape(3, 2) && t.storage == [0, 3, 1, 4, 2, 5])
    }
}
