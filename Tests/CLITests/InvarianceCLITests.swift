import Foundation
import MLA
import Report
import TensorCore
import Testing
import TestSupport

/// `mla-tp invariance` under real mpirun: the same configuration twice is identical, today's
/// default drift is shown with the stage where it starts (exit 5), the JSON is the report it
/// wrote, and bad layouts are one line naming what works.
@Suite(.serialized, .tags(.mpirun), .skippedInFastLane) struct InvarianceCLITests {
    static func invariance(_ args: [String], out: URL? = nil) -> MPIJob.Result {
        MPIJob.single(["invariance", "--preset", "tiny"] + args + (out.map { ["--out", $0.path] } ?? []), timeout: 240)
    }

    @Test func theSameLayoutTwiceIsIdenticalAndExitsZero() throws {
        let r = Self.invariance(["--dtype", "bf16", "--layouts", "tp2,tp2", "--batches", "together", "--chunks", "chunk2", "--json"])
        #expect(r.status == 0, "\(r)")
        let report = try r.decoded(InvarianceReport.self)
        #expect(report.cells.map(\.configuration.layout) == ["tp2", "tp2#2"])
        #expect(report.cells.allSatisfy(\.identical) && report.drift == nil, "\(report.cells)")
        #expect(report.cells.last?.elements == 12 * 256, "every sequence's output compared")
    }

    /// In bf16, tp = 2 reduces o_proj's two partials in bf16 where tp = 1 rounds one sum: the
    /// heads' stages agree bit for bit and the output does not.
    @Test func bf16TP2DriftsFromTP1FromOProjOnAndExitsFive() throws {
        let dir = try Fixtures.scratch("invariance")
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = Self.invariance(["--dtype", "bf16", "--layouts", "tp1,tp2", "--batches", "together", "--chunks", "forward"], out: dir)
        #expect(r.status == 5, "\(r)")
        #expect(r.stdout.contains("baseline") && r.stdout.contains(" @ o_proj"), "\(r.stdout)")
        #expect(r.stderr.contains("1 of 2 configurations differ from tp1 / together / forward"), "\(r.stderr)")
        let report = try MeasureFile.report(dir)
        let cell = try #require(report.cells.last)
        #expect(cell.firstStage == .oProj && cell.differing > 0 && cell.elements == 12 * 256, "\(cell)")
        #expect(cell.sequences.map(\.id) == [0, 1, 2] && cell.sequences.allSatisfy { $0.firstStage == .oProj })
    }

    /// In bf16 at tp = 1 a sequence's rows do not depend on the rows beside them while every batch
    /// stays on the row kernel (at most `Gemm.rowKernelMaxRows` rows, 8, where oneDNN's bf16 is
    /// native): alone, reversed and spread over two data-parallel groups it is the same sequence,
    /// found by its id. Past that bound a CPU with native bf16 runs the batch's projections on
    /// oneDNN's matmul, whose bits are not the row kernel's, and the default mode drifts at q: the
    /// matrix shows it there (and `--invariant` is the mode that holds at every batch size).
    @Test func sequencesMovedBetweenBatchesAndGroupsAreComparedByIdentity() throws {
        let args = ["--dtype", "bf16", "--layouts", "tp1,dp2", "--ranks", "2", "--batches", "together,alone,reversed", "--chunks", "forward", "--json"]
        let r = Self.invariance(args + ["--seqs", "2,3,3"])                      // 8 rows together
        #expect(r.status == 0, "\(r)")
        let report = try r.decoded(InvarianceReport.self)
        #expect(report.cells.count == 6 && report.cells.allSatisfy(\.identical), "\(report.cells)")

        let wide = Self.invariance(args + ["--seqs", "5,3,4"])                  // 12 rows together, 4 alone
        let native = OneDNN.bf16Support == .native
        #expect(wide.status == (native ? 5 : 0), "\(wide)")
        let cells = try wide.decoded(InvarianceReport.self).cells
        #expect(cells.count == 6 && cells.allSatisfy { $0.identical || (native && $0.firstStage == .q) }, "\(cells)")
    }

    /// Every layout, batch arrangement and chunking runs, and the JSON printed is the report written.
    @Test func theMatrixCoversEveryConfigurationAndItsJSONIsTheFileWritten() throws {
        let dir = try Fixtures.scratch("invariance")
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = Self.invariance(["--layouts", "tp1,dp2xtp1,tp2-dcp2", "--seqs", "4,3", "--json"], out: dir)
        #expect(r.status == 0 || r.status == 5, "\(r)")
        let printed = try r.decoded(InvarianceReport.self)
        #expect(try MeasureFile.report(dir) == printed)
        #expect(printed.cells.count == 3 * 3 * 3 && printed.lengths == [4, 3])
        #expect(printed.cells.allSatisfy { $0.sequences.map(\.id) == [0, 1] && $0.elements == 7 * 256 })
        #expect((r.status == 5) == (printed.drift != nil))
    }

    static let badInputs: [(args: [String], code: Int32, needles: [String])] = [
        (["--layouts", "tp3"], 3, ["layout tp3", "8 heads", "1, 2, 4, 8"]),
        (["--layouts", "tp2,tq4"], 3, ["\"tq4\" is not a layout name"]),
        (["--layouts", "tp2,dp2"], 3, ["layout dp2 does not give its ranks", "--ranks"]),
        (["--layouts", "tp2", "--chunks", "chunk0"], 2, ["chunk0", "chunkC"]),
        (["--layouts", "tp2", "--batches", "together,sideways"], 2, ["sideways", "together, alone, reversed"]),
        (["--layouts", "tp2", "--chunks", "decode,decode"], 2, ["--chunks lists decode twice"]),
        (["--layouts", "tp2-dcp2", "--decode", "naive"], 2, ["--decode naive", "tp2-dcp2"]),
    ]

    @Test(arguments: badInputs.indices)
    func badInputIsOneLineWithItsClassNamingWhatWorks(index: Int) throws {
        let (args, code, needles) = Self.badInputs[index]
        let dir = try Fixtures.scratch("invariance-bad")
        defer { try? FileManager.default.removeItem(at: dir) }
        try FailureContract.expect(["invariance", "--preset", "tiny"] + args + ["--out", dir.appendingPathComponent("out").path], ranks: nil,
                                   code: code, mentions: needles, watching: [dir])
    }
}

/// The report `invariance` wrote into its --out directory.
enum MeasureFile {
    static func report(_ dir: URL) throws -> InvarianceReport {
        try JSONDecoder().decode(InvarianceReport.self, from: Data(contentsOf: dir.appendingPathComponent("invariance.json")))
    }
}
