import Foundation
import MLA
import Report
import Testing

/// The invariance report compares configurations sequence by sequence, by id: identical, or how
/// many output elements differ and the first stage whose hash differs.
@Suite struct InvarianceReportTests {
    static func hash(_ word: UInt32) -> BitHash {
        var h = BitHash()
        h.feed(word)
        return h
    }

    /// Sequence `id` with `tokens` rows of output bits `output` and a hash per stage (`changed` stages hashed otherwise).
    static func sequence(_ id: Int, output: [UInt32], changed: Set<HashedStage> = []) -> InvarianceTrace.Sequence {
        InvarianceTrace.Sequence(id: id, tokens: output.count, stages: HashedStage.allCases.map {
            .init(stage: $0, hash: hash(UInt32(id * 16 + HashedStage.allCases.firstIndex(of: $0)!) + (changed.contains($0) ? 1000 : 0)))
        }, output: output)
    }

    static let base = InvarianceTrace(layout: "tp1", mode: .default, passes: [
        .init(pass: .init(arrangement: .together, chunking: .forward), sequences: [sequence(0, output: [1, 2, 3]), sequence(1, output: [4, 5])]),
    ])

    static func report(_ traces: [InvarianceTrace]) throws -> InvarianceReport {
        try InvarianceReport(model: "tiny", dtype: .bf16, decode: .absorbed, lengths: [3, 2], traces: traces)
    }

    @Test func sequencesInAnotherOrderAreComparedByIDAndFoundIdentical() throws {
        let other = InvarianceTrace(layout: "dp2xtp2", mode: .default, passes: [
            .init(pass: .init(arrangement: .reversed, chunking: .chunk(2)), sequences: [Self.sequence(1, output: [4, 5]), Self.sequence(0, output: [1, 2, 3])]),
        ])
        let r = try Self.report([Self.base, other])
        #expect(r.cells.count == 2 && r.cells.allSatisfy(\.identical))
        #expect(r.drift == nil)
        #expect(r.text().contains("identical: all 2 configurations"), "\(r.text())")
    }

    @Test func aDifferenceCountsElementsAndNamesTheFirstStageThatDiffers() throws {
        let other = InvarianceTrace(layout: "tp2", mode: .default, passes: [
            .init(pass: .init(arrangement: .together, chunking: .forward), sequences: [Self.sequence(0, output: [1, 9, 3], changed: [.oProj, .output]),
                                                                          Self.sequence(1, output: [4, 5], changed: [.attention, .gate, .oProj])]),
        ])
        let r = try Self.report([Self.base, other])
        let cell = try #require(r.cells.last)
        #expect(!cell.identical && cell.differing == 1 && cell.elements == 5)
        #expect(cell.firstStage == .attention, "the earliest over the sequences")
        #expect(cell.sequences.map(\.firstStage) == [.oProj, .attention])
        #expect(r.text().contains("1/5 @ attention"), "\(r.text())")
        let drift = try #require(r.drift)
        #expect(drift.failureClass == .numeric && drift.differing == 1 && drift.configurations == 2)
        #expect("\(drift)".contains("tp1 / together / forward"), "\(drift)")
    }

    @Test func theReportAndATraceRoundTripThroughJSON() throws {
        let r = try Self.report([Self.base, Self.base])
        let encoder = JSONEncoder()
        #expect(try JSONDecoder().decode(InvarianceReport.self, from: encoder.encode(r)) == r)
        #expect(try JSONDecoder().decode(InvarianceTrace.self, from: encoder.encode(Self.base)) == Self.base)
        let text = String(decoding: try encoder.encode([Chunking.chunk(4), .decode]), as: UTF8.self)
        #expect(text == #"["chunk4","decode"]"#)
    }

    @Test func aTraceMissingASequenceIsABugNotADifference() throws {
        let short = InvarianceTrace(layout: "tp2", mode: .default, passes: [
            .init(pass: .init(arrangement: .together, chunking: .forward), sequences: [Self.sequence(0, output: [1, 2, 3])]),
        ])
        #expect(throws: InvarianceReportError.missingSequence(id: 1, configuration: "tp2 / together / forward")) { try Self.report([Self.base, short]) }
    }

    @Test func chunkingsParseFromTheirNamesAndNothingElse() {
        #expect(["forward", "prefill", "chunk3", "decode"].compactMap(Chunking.init(name:)) == [.forward, .prefill, .chunk(3), .decode])
        for bad in ["chunk0", "chunk", "chunk+2", "chunk-1", "Chunk2", "decode ", ""] { #expect(Chunking(name: bad) == nil, "\(bad)") }
        #expect(Chunking.decode.serving(longest: 7)! == (7, nil) && Chunking.forward.serving(longest: 7) == nil)
        #expect(BatchArrangement.alone.batches(sequences: 3) == [[0], [1], [2]] && BatchArrangement.reversed.batches(sequences: 3) == [[2, 1, 0]])
    }
}
