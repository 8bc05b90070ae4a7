import TensorParallel
import Testing

/// Decode context parallelism's split of a sequence's tokens: token i on DCP index i mod C.
@Suite struct TokenShareTests {
    @Test(arguments: 1...8)
    func countsSumToTheTotalAndDifferByAtMostOne(count: Int) {
        for tokens in 0...50 {
            let counts = TokenShare.counts(tokens, over: count)
            #expect(counts.count == count && counts.reduce(0, +) == tokens, "C = \(count), \(tokens) tokens: \(counts)")
            #expect(counts.max()! - counts.min()! <= 1 && counts == counts.sorted(by: >), "C = \(count), \(tokens) tokens: \(counts)")
        }
    }

    /// Every token lives on exactly one index, and each index's tokens fill its local slots
    /// 0, 1, 2, … in cache order, as many as `localCount` says.
    @Test(arguments: 1...8)
    func everyTokenHasOneHomeAndLocalSlotsAreDense(count: Int) {
        let shares = (0..<count).map { TokenShare(index: $0, count: count) }
        let tokens = 37
        for i in 0..<tokens { #expect(shares.filter { $0.holds(i) }.count == 1, "token \(i), C = \(count)") }
        for share in shares {
            let slots = (0..<tokens).compactMap(share.localSlot)
            #expect(slots == Array(0 ..< share.localCount(tokens)), "\(share): \(slots)")
            for p in 0..<tokens {
                #expect(share.localCount(p + 1) == (0...p).filter(share.holds).count, "\(share), query at \(p)")
            }
        }
        #expect(TokenShare(index: 1, count: 3).localSlot(of: 7) == 2 && TokenShare(index: 0, count: 3).localSlot(of: 7) == nil)
    }

    @Test func aRankKeepsTheShareOfItsDCPIndex() {
        let layout = ParallelLayout(dp: 2, tp: 4, dcp: 2)
        for rank in 0..<8 {
            #expect(layout.tokenShare(of: rank) == TokenShare(index: layout.position(of: rank).dcpIndex, count: 2))
        }
        #expect((0..<8).map { layout.tokenShare(of: $0).index } == [0, 1, 0, 1, 0, 1, 0, 1])
        #expect(ParallelLayout(tp: 4).tokenShare(of: 3) == .whole)
    }
}
