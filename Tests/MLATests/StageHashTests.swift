import Foundation
@testable import MLA
import TensorCore
import TensorParallel
import Testing

/// The per-stage hashes compare like with like: a stage split by heads hashes the same values
/// alike whatever split them, and a sequence hashes alike however its rows arrived.
@Suite struct StageHashTests {
    /// `[rows, cols]` of distinct values.
    static func values(rows: Int, cols: Int, from start: Float = 0) throws -> Matrix {
        try Matrix(rows: rows, cols: cols, values: (0..<rows * cols).map { start + Float($0) * 0.25 })
    }

    /// Columns `cols` of `m` as a matrix of their own.
    static func columns(_ m: Matrix, _ cols: Range<Int>) throws -> Matrix {
        try Matrix(rows: m.rows, cols: cols.count, values: (0..<m.rows).flatMap { r in m.storage[r * m.cols + cols.lowerBound ..< r * m.cols + cols.upperBound] })
    }

    @Test func headsHashedOnOneRankOrSplitOverTwoCombineToOneHash() throws {
        let m = try Self.values(rows: 3, cols: 4 * 5)                       // [T, 4 heads × 5]
        let batch = try Batch(sequenceLengths: [3])
        let whole = StageHashes(sequenceIDs: [7])
        whole.begin(batch)
        whole.record(.attention, m, firstHead: 0, heads: 4, width: 5, stride: 5)
        let left = StageHashes(sequenceIDs: [7]), right = StageHashes(sequenceIDs: [7])
        left.begin(batch)
        right.begin(batch)
        left.record(.attention, try Self.columns(m, 0..<10), firstHead: 0, heads: 2, width: 5, stride: 5)
        right.record(.attention, try Self.columns(m, 10..<20), firstHead: 2, heads: 2, width: 5, stride: 5)
        let one = StageHashes.combine([whole.entries])[7]?[.attention]
        #expect(one != nil)
        #expect(StageHashes.combine([left.entries, right.entries])[7]?[.attention] == one, "heads combined in head order")
        #expect(StageHashes.combine([right.entries, left.entries])[7]?[.attention] == one, "whatever order the ranks come in")
        // Another value in one head is another hash.
        var changed = m
        changed.storage[12] += 1
        let other = StageHashes(sequenceIDs: [7])
        other.begin(batch)
        other.record(.attention, changed, firstHead: 0, heads: 4, width: 5, stride: 5)
        #expect(StageHashes.combine([other.entries])[7]?[.attention] != one)
    }

    @Test func aSequenceHashesAlikeInOnePrefillInChunksAndTokenByToken() throws {
        let m = try Self.values(rows: 4, cols: 6)                           // sequence 3's 4 rows, whole
        let once = StageHashes(sequenceIDs: [3])
        once.begin(try ServingStep(slots: [0], newTokens: [4]))
        once.record(.kv, m)
        let steps = StageHashes(sequenceIDs: [3])
        for r in 0..<4 {
            steps.begin(try ServingStep(slots: [0], newTokens: [1]))
            steps.record(.kv, try Matrix(rows: 1, cols: 6, values: Array(m.storage[r * 6 ..< (r + 1) * 6])))
        }
        #expect(once.entries == steps.entries)
    }

    @Test func rowsAreHashedUnderTheirSequencesIDNotTheirPosition() throws {
        let a = try Self.values(rows: 2, cols: 3), b = try Self.values(rows: 3, cols: 3, from: 100)
        let together = StageHashes(sequenceIDs: [10, 11])                  // a then b
        together.begin(try Batch(sequenceLengths: [2, 3]))
        together.record(.oProj, try Matrix(rows: 5, cols: 3, values: a.storage + b.storage))
        let reversed = StageHashes(sequenceIDs: [11, 10])                  // b then a
        reversed.begin(try Batch(sequenceLengths: [3, 2]))
        reversed.record(.oProj, try Matrix(rows: 5, cols: 3, values: b.storage + a.storage))
        #expect(StageHashes.combine([together.entries]) == StageHashes.combine([reversed.entries]))
        #expect(StageHashes.combine([together.entries])[10]?[.oProj] != StageHashes.combine([together.entries])[11]?[.oProj])
    }

    @Test func aHashReadsBackFromItsSixteenHexDigits() throws {
        var h = BitHash()
        h.feed(0x3f80_0000)
        let data = try JSONEncoder().encode([h])
        #expect(try JSONDecoder().decode([BitHash].self, from: data) == [h])
        #expect(throws: DecodingError.self) { try JSONDecoder().decode([BitHash].self, from: Data(#"["12"]"#.utf8)) }
    }
}
