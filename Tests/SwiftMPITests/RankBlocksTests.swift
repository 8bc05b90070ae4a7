import SwiftMPI
import Testing

/// The block layout the varying-count collectives (`allToAll`, `allGather(inPlace:)`) take.
@Suite struct RankBlocksTests {
    @Test func blocksLaidEndToEndStartWhereThePreviousOneEnds() {
        let b = RankBlocks(counts: [3, 0, 2, 2])
        #expect(b.offsets == [0, 3, 3, 5] && b.total == 7)
        #expect((0..<4).map { b[$0] } == [0..<3, 3..<3, 3..<5, 5..<7])
        #expect(RankBlocks(counts: [0, 0]).total == 0)
    }

    @Test func explicitOffsetsMayLeaveGaps() {
        let b = RankBlocks(counts: [0, 4, 4], offsets: [0, 4, 8])
        #expect(b[0] == 0..<0 && b[1] == 4..<8 && b[2] == 8..<12 && b.total == 8)
    }
}
