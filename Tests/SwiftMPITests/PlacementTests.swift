@testable import SwiftMPI
import Testing

/// Placement's bookkeeping, without MPI (the collective part runs under mpirun in
/// CLITests: `diagnose` on one host and across two, TwoHostTests).
@Suite struct PlacementTests {
    @Test(arguments: [
        ([0], [0]),
        ([0, 0, 0, 0], [0, 0, 0, 0]),
        ([0, 0, 2, 2], [0, 0, 1, 1]),
        ([0, 1, 0, 1], [0, 1, 0, 1]),              // round-robin placement
        ([0, 1, 2, 3], [0, 1, 2, 3]),
        ([0, 0, 2, 2, 4, 5, 4], [0, 0, 1, 1, 2, 3, 2]),
    ])
    func nodesAreNumberedInOrderOfTheirLowestRank(leaders: [Int], nodes: [Int]) {
        #expect(Placement.nodeNumbers(fromLeaders: leaders) == nodes)
        let p = Placement(hosts: leaders.map { "h\($0)" }, nodes: nodes)
        #expect(p.nodeCount == Set(leaders).count)
        #expect(p.spansNodes == (Set(leaders).count > 1))
    }

    @Test func theDescriptionListsEachNodeWithItsHostsAndRanks() {
        let two = Placement(hosts: ["a", "a", "b", "b"], nodes: [0, 0, 1, 1])
        #expect(two.description == "node 0 (a): ranks 0, 1; node 1 (b): ranks 2, 3")
        let odd = Placement(hosts: ["a", "b", "b"], nodes: [0, 1, 1])
        #expect(odd.description == "node 0 (a): rank 0; node 1 (b): ranks 1, 2")
        // Two nodes reporting one host name stay two nodes: the name is only for reading.
        let sameName = Placement(hosts: ["vm", "vm"], nodes: [0, 1])
        #expect(sameName.spansNodes && sameName.description == "node 0 (vm): rank 0; node 1 (vm): rank 1")
    }

    @Test func processorNamesAreCutIntoFixedWidthRecords() {
        let bytes: [UInt8] = Array("ab".utf8) + [0, 0] + Array("cde".utf8) + [0]
        #expect(bytes.chunked(4).map { Array($0) } == [[97, 98, 0, 0], [99, 100, 101, 0]])
        #expect([UInt8]().chunked(4).isEmpty)
        #expect([1, 2, 3].chunked(2).map { Array($0) } == [[1, 2], [3]])
    }
}
