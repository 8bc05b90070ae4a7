import TensorCore
import TensorParallel
import Testing

/// `HeadPaddedSource`: zeros beyond a tensor's real rows or columns, the base's own values inside.
@Suite struct HeadPaddedSourceTests {
    let base = SeededWeights(seed: 9)

    @Test func rowsAndColumnsBeyondTheRealOnesAreZeroAndTheRestIsTheBase() throws {
        let padded = HeadPaddedSource(base, rows: ["q": 6], columns: ["o": 5])
        let q = try padded.block("q.weight", shape: Shape(9, 4), rows: 4..<9, cols: 0..<4, initializer: .random(std: 1))
        let real = try base.block("q.weight", shape: Shape(6, 4), rows: 4..<6, cols: 0..<4, initializer: .random(std: 1))
        #expect(Array(q.storage[0..<8]) == real.storage && q.storage[8...].allSatisfy { $0 == 0 })
        let o = try padded.block("o.weight", shape: Shape(3, 8), rows: 0..<3, cols: 4..<8, initializer: .random(std: 1))
        let realO = try base.block("o.weight", shape: Shape(3, 5), rows: 0..<3, cols: 4..<5, initializer: .random(std: 1))
        for r in 0..<3 {
            #expect(o.storage[r * 4] == realO.storage[r] && o.storage[r * 4 + 1 ..< r * 4 + 4].allSatisfy { $0 == 0 })
        }
        let bias = try padded.vector("q.bias", count: 9, range: 3..<9, initializer: .random(std: 1))
        #expect(Array(bias[0..<3]) == (try base.vector("q.bias", count: 6, range: 3..<6, initializer: .random(std: 1))) && bias[3...].allSatisfy { $0 == 0 })
        // A tensor that is not padded, and a block wholly inside the real rows, are the base's.
        #expect(try padded.block("k.weight", shape: Shape(4, 4), rows: 0..<4, cols: 0..<4, initializer: .random(std: 1)).storage
                == base.block("k.weight", shape: Shape(4, 4), rows: 0..<4, cols: 0..<4, initializer: .random(std: 1)).storage)
        let all = try padded.block("q.weight", shape: Shape(9, 4), rows: 6..<9, cols: 0..<4, initializer: .random(std: 1))
        #expect(all.storage.allSatisfy { $0 == 0 })
    }
}
