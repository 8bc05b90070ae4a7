import ArgumentParser
import CMPI
import SwiftMPI

/// `mla-tp diagnose`: checks the MPI layer's error mapping on this machine.
struct Diagnose: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check that MPI failures become typed errors with MPI's own message (invalid root, negative count), and the shared-memory allreduce.")

    func run() throws {
        let world = try Runtime.start()
        let out = RankOutput(rank: world.rank)
        out.printRoot("placement: \(try world.placement())")
        let cases: [(String, MPIError?, Int32)] = [
            ("broadcast from a missing root", SelfTest.invalidRoot(world), MPI_ERR_ROOT),
            ("allreduce of -1 elements", SelfTest.negativeCount(world), MPI_ERR_COUNT),
        ]
        var ok = true
        for (what, error, expected) in cases {
            let pass = error?.errorClass == expected
            ok = ok && pass
            out.printRoot("\(what): \(error.map { "\($0.function) → class \($0.errorClass): \($0.message)" } ?? "no error")  \(pass ? "PASS" : "FAIL")")
        }
        if let wrong = try SelfTest.sharedMemorySums(world) {
            ok = ok && wrong == 0
            out.printRoot("shared-memory allreduce: 300 back-to-back sums of 0–4096 floats, \(wrong) wrong elements  \(wrong == 0 ? "PASS" : "FAIL")")
        } else {
            out.printRoot("shared-memory allreduce: not used here (one rank, ranks on several hosts, or more ranks than CPUs); MPI_Allreduce instead  SKIP")
        }
        try world.barrier()
        if !ok { throw CLIError(code: .internal, message: "the MPI layer did not map an MPI failure to its error class, or the shared-memory allreduce summed wrongly — report this with `mpirun --version`; --allreduce mpi avoids the latter", everyRank: true) }
        try Environment.finalize()
    }
}
