import Testing
import TensorCore
import TensorParallel

/// `FP8BlockStorage` quantizing a source that is not fp8 (seeded weights here): the same values
/// and scales at every tp and both split axes, tiles cut by shard edges included, DeepSeek's
/// amax / 448 rule, and the f32 reference source of the same values.
@Suite struct FP8StorageTests {
    static var source: SeededWeights { SeededWeights(seed: 21) }
    static let shape = Shape(300, 200)       // 3 × 2 tiles of 128, the last ones partial

    static func load(rows: Range<Int>, cols: Range<Int>) throws -> FP8BlockMatrix {
        try FP8BlockStorage.load("w", from: source, shape: shape, rows: rows, cols: cols, order: .outIn,
                                 initializer: .random(std: 0.05)).values
    }

    @Test(arguments: [1, 2, 3, 4, 5, 6])
    func everyTpHoldsTheSliceOfTheUnshardedQuantization(tp: Int) throws {
        let whole = try Self.load(rows: 0..<300, cols: 0..<200).dequantizedF32()
        for r in 0..<tp {
            let rows = r * 300 / tp ..< (r + 1) * 300 / tp, cols = r * 200 / tp ..< (r + 1) * 200 / tp
            let column = try Self.load(rows: rows, cols: 0..<200).dequantizedF32()      // column parallel: output rows
            let row = try Self.load(rows: 0..<300, cols: cols).dequantizedF32()         // row parallel: input columns
            for (i, g) in rows.enumerated() { for c in 0..<200 { #expect(column[i, c].bitPattern == whole[g, c].bitPattern) } }
            for g in 0..<300 { for (j, c) in cols.enumerated() { #expect(row[g, j].bitPattern == whole[g, c].bitPattern) } }
        }
    }

    @Test func eachTileScaleIsItsAmaxOver448AndItsLargestValueEncodes448() throws {
        let q = try Self.load(rows: 0..<300, cols: 0..<200)
        let f = try Self.source.block("w", shape: Self.shape, rows: 0..<300, cols: 0..<200, initializer: .random(std: 0.05))
        #expect(q.scaleCols == 2 && q.scales.count == 6)
        for tr in 0..<3 {
            for tc in 0..<2 {
                var amax: Float = 0, at = (0, 0)
                for r in tr * 128 ..< min(300, tr * 128 + 128) {
                    for c in tc * 128 ..< min(200, tc * 128 + 128) where abs(f[r, c]) > amax { amax = abs(f[r, c]); at = (r, c) }
                }
                #expect(q.scales[tr * 2 + tc] == amax / 448)
                #expect(q.values[at.0 * 200 + at.1] & 0x7f == 0x7e)
            }
        }
    }

    @Test func aBlockInsideOneTileKeepsThatTileScaleAndTheReferenceSourceSeesTheHeldValues() throws {
        let part = try Self.load(rows: 130..<140, cols: 7..<20)
        #expect(part.scales.count == 1 && part.rowOffset == 2 && part.columnOffset == 7)
        let reference = try FP8ValuesSource(Self.source).block("w", shape: Self.shape, rows: 130..<140, cols: 7..<20,
                                                                 initializer: .random(std: 0.05))
        #expect(reference.storage.map(\.bitPattern) == part.dequantizedF32().storage.map(\.bitPattern))
        #expect(FP8BlockStorage(part).bytes == 10 * 13 + 4)
    }

    @Test func aNonFiniteValueIsRefusedNamingTheTensorAndTile() {
        struct Poisoned: WeightSource {
            func block(_ name: String, shape: Shape, rows: Range<Int>, cols: Range<Int>, initializer: Initializer) throws -> Matrix {
                Matrix(rows: rows.count, cols: cols.count) { out in for i in 0..<out.count { out[i] = i == 5 ? .infinity : 1 } }
            }
            func vector(_ name: String, count: Int, range: Range<Int>, initializer: Initializer) throws -> [Float] { [] }
        }
        #expect(throws: WeightValueError.nonFinite(tensor: "w", tile: (0, 0))) {
            try FP8BlockStorage.load("w", from: Poisoned(), shape: Shape(4, 8), rows: 0..<4, cols: 0..<8, order: .outIn, initializer: .random(std: 1))
        }
    }
}
