import ArgumentParser
import CMPI
import SwiftMPI

/// `mla-tp diagnose`: checks the MPI layer's error mapping on this machine.
struct Diagnose: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check that MPI failures become typed errors with MPI's own message (invalid root, negative count).")

    func run() throws {
        let world = try Runtime.start()
        let out = RankOutput(rank: world.rank)
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
        try world.barrier()
        if !ok { throw CLIError(code: .internal, message: "the MPI layer did not map an MPI failure to its error class — report this with `mpirun --version`", everyRank: true) }
        try Environment.finalize()
    }
}
