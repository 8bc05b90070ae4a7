import Testing
@testable import MLA
import TensorCore
import TensorParallel

/// The invariant mode's trees: which layouts they serve, the order the ranks meet along them, and
/// the one operation both partners of an exchange must compute alike (the merge).
@Suite struct InvariantLayoutTests {
    @Test(arguments: [(128, 8, [1, 2, 4, 8]), (16, 8, [1, 2, 4, 8]), (8, 8, [1, 2, 4, 8]), (24, 8, [1, 2, 4, 8]), (12, 4, [1, 2, 4]),
                      (6, 2, [1, 2]), (5, 1, [1])])
    func oProjsBlocksAreTheLargestPowerOfTwoUpToEightThatDividesTheHeads(heads: Int, blocks: Int, tp: [Int]) {
        #expect(InvariantLayout.blocks(heads: heads) == blocks)
        #expect(InvariantLayout.tpSizes(heads: heads) == tp)
    }

    @Test func aLayoutTheTreesDoNotCoverIsRefusedNamingTheSizesThatWork() {
        #expect(throws: InvariantLayoutError(what: "tp", size: 3, heads: 24, works: [1, 2, 4, 8])) {
            try InvariantLayout.check(heads: 24, tp: 3)
        }
        #expect(throws: InvariantLayoutError(what: "tp", size: 8, heads: 12, works: [1, 2, 4])) {
            try InvariantLayout.check(heads: 12, tp: 8)
        }
        #expect(throws: InvariantLayoutError(what: "dcp", size: 3, heads: 8, works: [1, 2, 4, 8])) {
            try InvariantLayout.check(heads: 8, tp: 8, dcp: 3)
        }
        #expect(throws: InvariantLayoutError.self) { try InvariantLayout.check(quantization: .fp8) }
        for tp in [1, 2, 4, 8] { for dcp in [1, 2, 4, 8] where dcp <= tp { #expect(throws: Never.self) { try InvariantLayout.check(heads: 16, tp: tp, dcp: dcp) } } }
        let message = InvariantLayoutError(what: "tp", size: 3, heads: 24, works: [1, 2, 4, 8]).description
        #expect(message.contains("24 heads in 8 fixed blocks") && message.contains("use tp 1, 2, 4, 8"))
    }

    /// o_proj's blocks are contiguous per rank: neighbours first. The key classes are interleaved
    /// per rank: the farthest first. Either way each rank meets every other rank's subtree once.
    @Test func ranksMeetTheirPartnersInTheTreesOrder() {
        #expect(FixedTreeReduction.partners(rank: 5, size: 8, pairing: .adjacentFirst) == [4, 7, 1])
        #expect(FixedTreeReduction.partners(rank: 5, size: 8, pairing: .strideFirst) == [1, 7, 4])
        #expect(FixedTreeReduction.partners(rank: 0, size: 1, pairing: .strideFirst) == [])
        for size in [2, 4, 8] {
            for r in 0..<size {
                for pairing in [FixedTreeReduction.Pairing.adjacentFirst, .strideFirst] {
                    let p = FixedTreeReduction.partners(rank: r, size: size, pairing: pairing)
                    #expect(Set(p.map { $0 ^ r }).count == p.count && p.allSatisfy { (0..<size).contains($0) })
                }
            }
        }
    }

    /// merge(a, b) and merge(b, a) have the same bits, partials that saw no key included: what lets
    /// both partners of an exchange keep one value.
    @Test func theMergeOfTwoPartialsIsSymmetricBitForBit() {
        let lora = 19, rw = lora + 2
        var state: UInt32 = 7
        func value() -> Float { state = state &* 1_664_525 &+ 1_013_904_223; return Float(Int32(bitPattern: state >> 9) - (1 << 22)) / Float(1 << 20) }
        for trial in 0..<200 {
            var a = (0..<rw).map { _ in value() }, b = (0..<rw).map { _ in value() }
            a[lora + 1] = abs(a[lora + 1]); b[lora + 1] = abs(b[lora + 1])
            if trial % 7 == 0 { a[lora] = -.infinity; a[lora + 1] = 0; for i in 0..<lora { a[i] = 0 } }
            if trial % 11 == 0 { b[lora] = -.infinity; b[lora + 1] = 0; for i in 0..<lora { b[i] = 0 } }
            var ab = a, ba = b
            InvariantAttention.merge(&ab, b, count: 1, lora: lora)
            InvariantAttention.merge(&ba, a, count: 1, lora: lora)
            #expect(ab.map(\.bitPattern) == ba.map(\.bitPattern), "trial \(trial)")
        }
    }
}
