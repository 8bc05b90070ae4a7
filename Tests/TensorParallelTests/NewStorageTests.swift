import Testing
import TensorCore
import TensorParallel
import TestSupport

/// A storage the layers have never heard of: int8 values with one f32 scale per output row,
/// dequantized to f32 for the product. Defined here, outside the library, it shows that a new
/// format is one conforming type: the three layouts take it as they are.
struct RowScaledInt8Storage: WeightStorage {
    let values: [Int8]          // [out, in], row-major
    let scales: [Float]         // [out]: row r's values × scales[r] are its weights
    let outFeatures: Int, inFeatures: Int
    let order: WeightOrder

    static var activations: Precision { .f32 }
    static var forwardOrder: WeightOrder { .outIn }

    static func load(_ name: String, from source: WeightSource, shape: Shape, rows: Range<Int>, cols: Range<Int>,
                     order: WeightOrder, initializer: Initializer) throws -> RowScaledInt8Storage {
        let w = try source.block(name, shape: shape, rows: rows, cols: cols, initializer: initializer)   // [rows, cols]
        var values: [Int8] = [], scales: [Float] = []
        for r in 0..<w.rows {
            let row = w.storage[r * w.cols ..< (r + 1) * w.cols]
            let scale = max(row.map(abs).max() ?? 0, .leastNormalMagnitude) / 127
            scales.append(scale)
            values += row.map { Int8(($0 / scale).rounded()) }
        }
        return RowScaledInt8Storage(values: values, scales: scales, outFeatures: w.rows, inFeatures: w.cols, order: order)
    }

    var bytes: Int { values.count + scales.count * MemoryLayout<Float>.size }

    /// Dequantized `[out, in]`.
    var dequantized: Matrix {
        Matrix(rows: outFeatures, cols: inFeatures) { out in
            for (i, v) in values.enumerated() { out[i] = Float(v) * scales[i / inFeatures] }
        }
    }

    var operand: AnyMatrix { .f32(order == .outIn ? dequantized : dequantized.transposed()) }

    func apply(_ x: Matrix, into y: inout Matrix) throws -> GemmKernel {
        try Gemm.linear(x, weight: AnyMatrix.f32(dequantized), into: &y)
    }
}

@Suite struct NewStorageTests {
    static var source: SeededWeights { SeededWeights(seed: 33) }

    @Test(arguments: [1, 2, 4])
    func aStorageDefinedOutsideTheLibraryRunsTheColumnRowPairUnchanged(tp: Int) throws {
        let x = try Matrix(rows: 3, cols: 16, values: SeededInit.fill(name: "x", seed: 3, rows: 0..<3, cols: 0..<16, globalCols: 16, std: 1))
        func pair(_ shard: Shard, _ storage: any WeightStorage.Type) throws -> (ColumnParallelLinear, RowParallelLinear) {
            (try ColumnParallelLinear(name: "w1", inFeatures: 16, outFeatures: 8, bias: true, shard: shard, source: Self.source,
                                      initializer: .random(std: 0.3), storage: storage),
             try RowParallelLinear(name: "w2", inFeatures: 8, outFeatures: 4, bias: true, shard: shard, source: Self.source,
                                   initializer: .random(std: 0.3), storage: storage))
        }
        let (c1, r1) = try pair(.whole, F32Storage.self)
        var h1 = Matrix(rows: 3, cols: 8), reference = Matrix(rows: 3, cols: 4)
        try c1.forward(x, into: &h1)
        try r1.forward(h1, into: &reference, collectives: .local)
        var sum = Matrix(rows: 3, cols: 4)                                          // Σ_r partials [T, out]
        for r in 0..<tp {
            let (c, row) = try pair(Shard(rank: r, size: tp), RowScaledInt8Storage.self)
            #expect(c.localBytes == (8 / tp) * 16 + (8 / tp) * 4 + (8 / tp) * 4)   // int8 values, a scale per row, f32 bias
            #expect(row.localBytes == 4 * (8 / tp) + 4 * 4 + 4 * 4)
            var h = Matrix(rows: 3, cols: 8 / tp)                                   // [T, hidden/tp]
            try c.forward(x, into: &h)
            var partial = Matrix(rows: 3, cols: 4)
            try row.partial(h, into: &partial)
            for k in sum.storage.indices { sum.storage[k] += partial.storage[k] }
            if r == tp - 1 { try row.finish(&sum) }
        }
        // int8 with a per-row scale keeps ~2 decimal digits: the pair lands within 3% of f32, not exactly on it.
        let error = try Comparison(sum, reference: reference).relative
        #expect(error < 0.03 && error > 0, "relative error \(error)")
    }
}
