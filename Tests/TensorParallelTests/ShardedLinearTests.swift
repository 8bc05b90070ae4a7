import Testing
import TensorCore
import TensorParallel
import TestSupport

/// The one sharded linear under its three layouts, with each storage: a storage holds the
/// source's block as its format stores it, counts its bytes, and every layout × storage puts
/// the unsharded product back together.
@Suite struct ShardedLinearTests {
    static var source: SeededWeights { SeededWeights(seed: 21) }
    static var storages: [any WeightStorage.Type] { [F32Storage.self, BF16Storage.self] }
    static let (tokens, inFeatures, outFeatures) = (5, 12, 6)

    /// The block as `[out, in]` f32 values, whatever order the storage keeps it in.
    static func outIn(_ s: any WeightStorage) -> Matrix { (s.order == .outIn ? s.operand : s.operand.transposed()).widened() }

    @Test(arguments: [WeightOrder.outIn, .inOut])
    func aStoredBlockReadsBackAsTheSourceBlockInTheStoragesValues(order: WeightOrder) throws {
        let shape = Shape(12, 10), rows = 3..<9, cols = 2..<7
        let want = try Self.source.block("w", shape: shape, rows: rows, cols: cols, initializer: .random(std: 0.5))  // [6, 5]
        for storage in Self.storages {
            let held = try storage.load("w", from: Self.source, shape: shape, rows: rows, cols: cols, order: order,
                                        initializer: .random(std: 0.5))
            #expect(held.order == order && held.operand.precision == storage.activations)
            #expect(held.operand.shape == (order == .outIn ? [6, 5] : [5, 6]))
            // f32 holds the values as drawn; bf16 each one rounded to nearest even, once.
            let rounded = want.storage.map { storage.activations.round($0) }
            #expect(Self.outIn(held).storage == rounded, "\(storage) in \(order)")
        }
    }

    @Test func bytesCountEachStoragesElementsAndTheBiasInItsActivations() throws {
        for (storage, size) in [(F32Storage.self as any WeightStorage.Type, 4), (BF16Storage.self, 2)] {
            let shard = Shard(rank: 1, size: 2)
            let column = try ColumnParallelLinear(name: "c", inFeatures: 10, outFeatures: 12, bias: true, shard: shard,
                                                  source: Self.source, initializer: .random(std: 0.1), storage: storage)
            let row = try RowParallelLinear(name: "o", inFeatures: 12, outFeatures: 5, bias: true, shard: shard,
                                            source: Self.source, initializer: .random(std: 0.1), storage: storage)
            let replicated = try ReplicatedLinear(name: "r", inFeatures: 10, outFeatures: 12, bias: false,
                                                  source: Self.source, initializer: .random(std: 0.1), storage: storage)
            #expect(column.storage.bytes == 6 * 10 * size && column.localBytes == (6 * 10 + 6) * size)
            #expect(row.storage.bytes == 5 * 6 * size && row.localBytes == (5 * 6 + 5) * size)
            #expect(replicated.localBytes == 12 * 10 * size)
            #expect(column.bias?.precision == storage.activations && row.precision == storage.activations)
        }
    }

    @Test func thePartitionTakesItsBlockFromTheShard() throws {
        let shard = Shard(rank: 2, size: 3)
        #expect(try Partition(.column, of: "w", inFeatures: 4, outFeatures: 9, shard: shard) == .column(outRows: 6..<9))
        #expect(try Partition(.row, of: "w", inFeatures: 9, outFeatures: 4, shard: shard) == .row(inColumns: 6..<9))
        let replicated = try Partition(.replicated, of: "w", inFeatures: 9, outFeatures: 4, shard: shard)
        #expect(replicated.rows(of: 4) == 0..<4 && replicated.columns(of: 9) == 0..<9 && replicated.layout == .replicated)
        #expect(throws: TPError.indivisible(name: "w output", width: 10, tp: 3)) {
            try Partition(.column, of: "w", inFeatures: 4, outFeatures: 10, shard: shard)
        }
    }

    /// `x·Wᵀ + b` in float64 from the source's values as `p` stores them (x too, as a bf16 GEMM
    /// reads it), rounded once to `p`: the unsharded layer's output.
    static func unsharded(_ x: Matrix, _ p: Precision) throws -> Matrix {
        let w = try source.block("w.weight", shape: Shape(outFeatures, inFeatures), rows: 0..<outFeatures, cols: 0..<inFeatures,
                                 initializer: .random(std: 0.3))
        let b = try source.vector("w.bias", count: outFeatures, range: 0..<outFeatures, initializer: .random(std: 1))
        var y = Matrix(rows: x.rows, cols: outFeatures)
        for i in 0..<x.rows {
            for j in 0..<outFeatures {
                var acc: Double = 0
                for k in 0..<inFeatures { acc += Double(p.round(x[i, k])) * Double(p.round(w[j, k])) }
                y[i, j] = p.round(Float(acc) + p.round(b[j]))
            }
        }
        return y
    }

    /// Within one step of `p` of the exact output (the GEMM sums in another order).
    static func close(_ y: Matrix, _ want: Matrix, _ p: Precision) -> Bool {
        let step: Float = p == .f32 ? 1e-5 : 0x1p-7
        return y.shape == want.shape && zip(y.storage, want.storage).allSatisfy { abs($0 - $1) <= max(abs($1), 1e-2) * step }
    }

    @Test(arguments: [1, 2, 3])
    func everyLayoutAndStorageGivesTheUnshardedProduct(tp: Int) throws {
        let (T, n) = (Self.tokens, Self.outFeatures)
        let x = try Matrix(rows: T, cols: Self.inFeatures, values: SeededInit.fill(name: "x", seed: 4, rows: 0..<T, cols: 0..<Self.inFeatures,
                                                                                     globalCols: Self.inFeatures, std: 1))
        for storage in Self.storages {
            let p = storage.activations, want = try Self.unsharded(x, p)
            func build(_ layout: Layout, _ shard: Shard, _ order: WeightOrder) throws -> ShardedLinear {
                try ShardedLinear(name: "w", inFeatures: Self.inFeatures, outFeatures: n,
                                  partition: Partition(layout, of: "w", inFeatures: Self.inFeatures, outFeatures: n, shard: shard),
                                  bias: true, source: Self.source, initializer: .random(std: 0.3), biasInitializer: .random(std: 1),
                                  order: order, storage: storage)
            }
            for order in [WeightOrder.outIn, .inOut] {
                let replicated = try ReplicatedLinear(name: "w", inFeatures: Self.inFeatures, outFeatures: n, bias: true, source: Self.source,
                                                      initializer: .random(std: 0.3), biasInitializer: .random(std: 1), order: order, storage: storage)
                var y = Matrix(rows: T, cols: n)                                  // [T, out]
                try replicated.forward(x, into: &y)
                #expect(Self.close(y, want, p), "replicated \(storage) \(order)")
                var sum = Matrix(rows: T, cols: n)                                // Σ_r partials [T, out]
                var last: ShardedLinear?
                for r in 0..<tp {
                    let shard = Shard(rank: r, size: tp)
                    let column = try build(.column, shard, order)
                    var yr = Matrix(rows: T, cols: n / tp)                        // [T, out/tp]
                    try column.product(x, into: &yr)
                    try column.finish(&yr)
                    #expect(Self.close(yr, want.columns(column.partition.rows(of: n)), p), "column rank \(r) of \(tp), \(storage) \(order)")
                    let row = try build(.row, shard, order)
                    var partial = Matrix(rows: T, cols: n)                        // [T, out], no bias
                    try row.product(x.columns(row.partition.columns(of: Self.inFeatures)), into: &partial)
                    for k in sum.storage.indices { sum.storage[k] += partial.storage[k] }
                    last = row
                }
                try last!.finish(&sum)                                            // the bias once, after the sum
                #expect(Self.close(sum, want, p), "row over tp \(tp), \(storage) \(order)")
            }
        }
    }
}
