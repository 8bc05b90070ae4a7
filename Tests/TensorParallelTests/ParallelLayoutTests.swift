import Testing
import TensorParallel

@Suite struct ParallelLayoutTests {
    @Test func namesParseIntoDpTpAndDcp() throws {
        for (name, dp, tp, dcp) in [("tp8", 1, 8, 1), ("dp2xtp4", 2, 4, 1), ("dp8", 8, 1, 1), ("tp8-dcp8", 1, 8, 8),
                                    ("dp2xtp4-dcp2", 2, 4, 2), ("dp4-dcp2", 4, 2, 2)] {
            let l = try ParallelLayout(name: name, ranks: 8)
            #expect((l.dp, l.tp, l.dcp) == (dp, tp, dcp), "\(name)")
            #expect(try ParallelLayout(name: l.description, ranks: 8) == l, "\(name) → \(l.description) round trip")
        }
    }

    @Test func badNamesAndNumbersAreRefusedWithTheNumbers() {
        for bad in ["", "tp", "x8", "tp8x", "dp2xtp", "tp8-dcp", "tp8-dcp3", "dp3", "dp2xtp2", "tp4", "tp8 ", "dp2-tp4"] {
            #expect(throws: LayoutError.self, "\(bad)") { try ParallelLayout(name: bad, ranks: 8) }
        }
        #expect(throws: LayoutError.dpDoesNotDivideRanks(dp: 3, ranks: 4)) { try ParallelLayout(ranks: 4, dp: 3, dcp: 1) }
        #expect(throws: LayoutError.dcpDoesNotDivideGroup(dcp: 4, group: 2, dp: 2)) { try ParallelLayout(ranks: 4, dp: 2, dcp: 4) }
        #expect(throws: LayoutError.nonPositive(dp: 0, dcp: 1)) { try ParallelLayout(ranks: 4, dp: 0, dcp: 1) }
    }

    @Test func withoutRanksANameGivesItsOwnAndOneWithoutTPNeedsAFallback() throws {
        #expect(try ParallelLayout.list("tp1,tp8-dcp8,dp2xtp4", ranks: nil) == [.init(tp: 1), .init(tp: 8, dcp: 8), .init(dp: 2, tp: 4)])
        #expect(throws: LayoutError.ranksNotNamed(name: "dp2")) { try ParallelLayout.list("tp2,dp2", ranks: nil) }
        #expect(try ParallelLayout.list("tp1,dp2", ranks: nil, fallback: 4) == [.init(tp: 1), .init(dp: 2, tp: 2)])
        #expect(throws: LayoutError.dpInName(name: "dp3", dp: 3, ranks: 4)) { try ParallelLayout.list("dp3", ranks: nil, fallback: 4) }
        #expect("\(LayoutError.ranksNotNamed(name: "dp2"))".contains("--ranks"))
    }

    @Test func positionsAreConsecutiveGroups() {
        let l = ParallelLayout(dp: 2, tp: 4, dcp: 2)
        #expect((0..<8).map { l.position(of: $0).dpGroup } == [0, 0, 0, 0, 1, 1, 1, 1])
        #expect((0..<8).map { l.position(of: $0).tpRank } == [0, 1, 2, 3, 0, 1, 2, 3])
        #expect((0..<8).map { l.position(of: $0).dcpGroup } == [0, 0, 1, 1, 0, 0, 1, 1])
        #expect((0..<8).map { l.position(of: $0).dcpIndex } == [0, 1, 0, 1, 0, 1, 0, 1])
    }

    @Test func assignmentBalancesTokensAndKeepsBatchOrder() {
        let l = ParallelLayout(dp: 2, tp: 2)
        #expect(l.assign(lengths: [7, 1, 12, 5]) == [[1, 2], [0, 3]])
        #expect(ParallelLayout(dp: 4, tp: 1).assign(lengths: [9]) == [[0], [], [], []])
        let lengths = (0..<40).map { ($0 * 37) % 23 + 1 }
        for dp in [2, 3, 5] {
            let groups = ParallelLayout(dp: dp, tp: 1).assign(lengths: lengths)
            #expect(groups.flatMap { $0 }.sorted() == Array(0..<40) && groups.allSatisfy { $0 == $0.sorted() })
            let load = groups.map { $0.reduce(0) { $0 + lengths[$1] } }
            #expect(load.max()! - load.min()! <= lengths.max()!, "dp \(dp): loads \(load)")
        }
    }
}
