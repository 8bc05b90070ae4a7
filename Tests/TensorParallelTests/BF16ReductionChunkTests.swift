import Testing
import TensorCore
import TensorParallel

/// The bf16 reduction's ring split in one process: the chunks each rank owns, the traffic that
/// split implies, and the owner's per-chunk sum giving exactly the bits of the rank-order sum of
/// whole vectors.
@Suite struct BF16ReductionChunkTests {
    @Test func chunksAreContiguousAndTheFirstNModTpHoldOneMore() {
        #expect(BF16Reduction.Chunks(count: 10, ranks: 4).ranges == [0..<3, 3..<6, 6..<8, 8..<10])
        #expect(BF16Reduction.Chunks(count: 7, ranks: 3).ranges == [0..<3, 3..<5, 5..<7])
        #expect(BF16Reduction.Chunks(count: 8, ranks: 4).ranges == [0..<2, 2..<4, 4..<6, 6..<8])
        for n in 0...40 {
            for tp in 1...9 {
                let ranges = BF16Reduction.Chunks(count: n, ranks: tp).ranges
                let sizes = ranges.map(\.count)
                #expect(ranges.first?.lowerBound == 0 && ranges.last?.upperBound == n, "n=\(n) tp=\(tp): \(ranges)")
                #expect(zip(ranges, ranges.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound }, "n=\(n) tp=\(tp): \(ranges)")
                #expect(sizes.max()! - sizes.min()! <= 1 && sizes == sizes.sorted(by: >), "n=\(n) tp=\(tp): \(sizes)")
            }
        }
    }

    @Test func fewerValuesThanRanksLeaveTheLastChunksEmpty() {
        #expect(BF16Reduction.Chunks(count: 2, ranks: 4).ranges == [0..<1, 1..<2, 2..<2, 2..<2])
        #expect(BF16Reduction.Chunks(count: 0, ranks: 3).ranges == [0..<0, 0..<0, 0..<0])
        #expect(BF16Reduction.Chunks(count: 0, ranks: 3).valuesSent(by: 1) == 0)
    }

    /// Each rank sends n + (tp − 2)·|its chunk|: a ring's 2(tp − 1)/tp · n when tp divides n, and
    /// 2(tp − 1)·n over all ranks whatever n, not the (tp − 1)·n per rank of gathering every partial.
    @Test func eachRankSendsARingsShare() {
        #expect((0..<4).map { BF16Reduction.Chunks(count: 4096, ranks: 4).valuesSent(by: $0) } == [6144, 6144, 6144, 6144])
        #expect((0..<3).map { BF16Reduction.Chunks(count: 7, ranks: 3).valuesSent(by: $0) } == [10, 9, 9])
        #expect(BF16Reduction.Chunks(count: 9, ranks: 2).valuesSent(by: 0) == 9 && BF16Reduction.Chunks(count: 5, ranks: 1).valuesSent(by: 0) == 0)
        for n in [0, 1, 2, 7, 1001, 4095] {
            for tp in 1...8 {
                let c = BF16Reduction.Chunks(count: n, ranks: tp)
                #expect((0..<tp).map(c.valuesSent).reduce(0, +) == 2 * (tp - 1) * n, "n=\(n) tp=\(tp)")
            }
        }
    }

    /// Every owner sums its chunk from the pieces an all-to-all would hand it (its own slot
    /// filled with NaNs, to show it is never read); the chunks put together are the whole vectors'
    /// rank-order sum, bit for bit, at uneven splits and with empty chunks.
    @Test(arguments: [1, 2, 3, 4, 5])
    func theOwnersChunkSumsAreTheRankOrderSumOfWholeVectors(tp: Int) throws {
        for n in [0, 1, 2, 3, 7, 1001, 4097] {
            let values = { (r: Int) in (0..<n).map { j in Float((j * 37 + r * 101) % 1999 - 999) * (r % 2 == 0 ? 1.0037 : 0.013) } }
            let partials = try (0..<tp).map { try Matrix(rows: 1, cols: n, values: values($0)) }
            let rounded = partials.map { BF16.round($0.storage) }                          // [tp][n] as each rank sends them
            let whole = BF16Reduction.sum(partials)
            let chunks = BF16Reduction.Chunks(count: n, ranks: tp)
            var stitched = [Float](repeating: .nan, count: n)
            for owner in 0..<tp {
                let own = chunks.range(owner), k = own.count
                var received = [BFloat16](repeating: BFloat16(bitPattern: 0x7fc1), count: tp * k)   // [tp, k], NaN in the owner's slot
                for r in 0..<tp where r != owner { received.replaceSubrange(r * k ..< (r + 1) * k, with: rounded[r][own]) }
                let mine = Array(rounded[owner][own])
                var sum = [Float](repeating: .nan, count: k)
                mine.withUnsafeBufferPointer { m in
                    received.withUnsafeBufferPointer { rcv in
                        sum.withUnsafeMutableBufferPointer { BF16Reduction.sumChunk(own: m, received: rcv, rank: owner, ranks: tp, into: $0) }
                    }
                }
                stitched.replaceSubrange(own, with: sum)
            }
            #expect(stitched.map(\.bitPattern) == whole.storage.map(\.bitPattern), "tp=\(tp) n=\(n)")
        }
    }
}
