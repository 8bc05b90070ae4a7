import Foundation
import Report
import Testing
import TestSupport

/// The transport that crosses hosts (`--mca btl tcp,self`, shared memory excluded), on this
/// host's loopback interface, gives what shared memory gives. See docs/multi-node.md.
@Suite(.serialized, .tags(.mpirun), .skippedInFastLane) struct MultiNodeTests {
    static let tcp = ["--mca", "btl", "tcp,self", "--mca", "btl_tcp_if_include", "lo"]

    @Test(arguments: [2, 4])
    func tcpOverLoopbackGivesTheSharedMemoryOutput(tp: Int) throws {
        let dir = try Fixtures.scratch("tcp")
        defer { try? FileManager.default.removeItem(at: dir) }
        let tcpOut = dir.appendingPathComponent("tcp.safetensors").path, shmOut = dir.appendingPathComponent("shm.safetensors").path
        // --allreduce mpi: on one host the small reduction would otherwise take the shared-memory
        // window, which no transport carries; across hosts `auto` uses MPI_Allreduce by itself.
        let args = ["run", "--seqs", "9,23", "--check", "--json", "--allreduce", "mpi"]
        let viaTCP = MPIJob.run(ranks: tp, args + ["--output", tcpOut], timeout: 60, mpirunFlags: Self.tcp)
        #expect(viaTCP.status == 0, "\(viaTCP)")
        let rel = try #require(try viaTCP.decoded(RunReport.self).check?.relative, "no check in the report: \(viaTCP)")
        #expect(rel <= 1e-5, "tcp tp=\(tp): relative error \(rel) vs the unsharded forward")

        let viaSHM = MPIJob.run(ranks: tp, args + ["--output", shmOut], timeout: 60, mpirunFlags: ["--mca", "btl", "vader,self"])
        #expect(viaSHM.status == 0, "\(viaSHM)")

        let a = try Fixtures.output(tcpOut), b = try Fixtures.output(shmOut)
        #expect(a.count == 32 * 256)
        #expect(allClose(a, b, rtol: 1e-6, atol: 1e-7), "tcp and shared-memory outputs differ")
        let identical = a.elementsEqual(b) { $0.bitPattern == $1.bitPattern }
        #expect(identical, "the same reduction algorithm runs over both transports, so the floats should match bit for bit")
    }

    /// With shared memory excluded and TCP limited to an interface that does not exist, the job
    /// fails in `MPI_Init` (no route between the ranks) instead of silently using another
    /// transport: Open MPI's own exit, before mla-tp prints anything.
    @Test func theTcpSelectionIsReallyTheOnlyTransport() {
        let r = MPIJob.run(ranks: 2, ["run", "--tokens", "4"], timeout: 30,
                           mpirunFlags: ["--mca", "btl", "tcp,self", "--mca", "btl_tcp_if_include", "nonexistent0"])
        #expect(r.status == MPIRunExit.initFailed, "expected MPI_Init to find no route between ranks: \(r)")
        #expect(!r.timedOut && r.seconds < 10, "\(r)")
        #expect(r.stdout.isEmpty && !r.stderr.contains("mla-tp: rank"), "nothing ran past MPI_Init: \(r)")
    }
}
