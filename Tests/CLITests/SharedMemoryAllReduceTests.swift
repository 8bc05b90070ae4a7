import Foundation
import Report
import Testing
import TestSupport

/// `--allreduce auto` reduces small payloads (a decode step's) through a shared-memory window
/// when every rank is on one host and no core hosts two ranks; it must give what
/// `MPI_Allreduce` gives, and fall back to it where it does not apply.
@Suite(.serialized, .tags(.mpirun), .skippedInFastLane) struct SharedMemoryAllReduceTests {
    static let cpus = ProcessInfo.processInfo.activeProcessorCount

    @Test func diagnoseSumsExactlyThroughTheWindowOrSaysWhyItIsNotUsed() {
        let r = MPIJob.run(ranks: 2, ["diagnose"], timeout: 60)
        #expect(r.status == 0, "\(r)")
        if Self.cpus >= 2 {
            #expect(r.stdout.contains("shared-memory allreduce: 300 back-to-back sums of 0–4096 floats, 0 wrong elements  PASS"), "\(r)")
        } else {
            #expect(r.stdout.contains("shared-memory allreduce: not used here"), "\(r)")
        }
    }

    @Test(arguments: [2, 4])
    func servingThroughTheWindowGivesTheMPIAllreduceOutput(tp: Int) throws {
        let dir = try Fixtures.scratch("shm")
        defer { try? FileManager.default.removeItem(at: dir) }
        let args = ["run", "--seqs", "7,1,12", "--decode-steps", "3", "--check", "--json"]
        var outputs: [[Float]] = []
        for choice in ["auto", "mpi"] {
            let file = dir.appendingPathComponent("\(choice).safetensors").path
            let r = MPIJob.run(ranks: tp, args + ["--allreduce", choice, "--output", file], timeout: 60)
            #expect(r.status == 0, "\(r)")
            let expected = choice == "auto" && tp <= Self.cpus ? "shared-memory window" : "MPI_Allreduce"
            #expect((try? r.decoded(RunReport.self))?.allReducePath?.rawValue == expected, "tp=\(tp) --allreduce \(choice) on \(Self.cpus) CPUs: \(r.stdout.prefix(300))")
            outputs.append(try Fixtures.output(file))
        }
        #expect(outputs[0].count == 20 * 256)
        #expect(allClose(outputs[0], outputs[1], rtol: 1e-6, atol: 1e-7), "tp=\(tp): the window and MPI_Allreduce disagree")
        if tp == 2 {   // two addends: a + b == b + a, so any algorithm gives the same bits
            #expect(outputs[0].elementsEqual(outputs[1]) { $0.bitPattern == $1.bitPattern })
        }
    }

    @Test func aWrongChoiceIsAUsageError() {
        let r = MPIJob.run(ranks: 1, ["run", "--allreduce", "nccl"], timeout: 30)
        #expect(r.status == 2, "\(r)")
        #expect(r.stderr.contains("auto") && r.stderr.contains("mpi"), "\(r)")
    }
}
