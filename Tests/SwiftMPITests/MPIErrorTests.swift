import CMPI
import SwiftMPI
import Testing
import TestSupport

@Suite struct MPIErrorTests {
    @Test func outsideMPIsLifetimeTheErrorStillNamesFunctionAndCode() {
        // MPI is never initialized in the test process (Open MPI forbids a second init and
        // aborts on most calls before init), so only the number is known here.
        let e = MPIError(function: "MPI_Bcast", code: MPI_ERR_ROOT)
        #expect(e.code == MPI_ERR_ROOT && e.errorClass == MPI_ERR_ROOT)
        #expect(e.description.contains("MPI_Bcast failed") && e.description.contains("\(MPI_ERR_ROOT)"))
    }

    @Test func buffersOverInt32CountsAreSplitIntoChunks() {
        let parts = chunks(count: 10, limit: 4)
        #expect(parts.map(\.offset) == [0, 4, 8] && parts.map(\.length) == [4, 4, 2])
        let big = chunks(count: Int(Int32.max) * 2 + 5)
        #expect(big.count == 3 && big.allSatisfy { $0.length <= Int(Int32.max) })
        #expect(big.reduce(0) { $0 + $1.length } == Int(Int32.max) * 2 + 5)
        #expect(chunks(count: 0).isEmpty)
    }
}

/// The typed error mapping inside a real MPI job.
@Suite(.serialized, .tags(.mpirun), .skippedInFastLane) struct MPIErrorMappingTests {
    @Test(arguments: [1, 2])
    func mpiFailuresBecomeTypedErrorsWithTheLibrarysMessage(ranks: Int) {
        let r = MPIJob.run(ranks: ranks, ["diagnose"], timeout: 30)
        #expect(r.status == 0, "\(r)")
        #expect(r.stdout.contains("MPI_Bcast → class \(MPI_ERR_ROOT)") && r.stdout.lowercased().contains("invalid root"), "\(r)")
        #expect(r.stdout.contains("MPI_Allreduce → class \(MPI_ERR_COUNT)") && r.stdout.lowercased().contains("invalid count"), "\(r)")
        #expect(!r.stdout.contains("FAIL"), "\(r)")
    }
}
