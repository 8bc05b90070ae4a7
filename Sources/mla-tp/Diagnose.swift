import ArgumentParser
import CMPI
import SwiftMPI
import TensorParallel

/// `mla-tp diagnose`: checks the MPI layer's error mapping on this machine.
struct Diagnose: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check that MPI failures become typed errors with MPI's own message (invalid root, negative count), the shared-memory allreduce, the bf16 allreduce's bits and traffic, and the DCP log-sum-exp merge.")

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
        for c in world.size > 1 ? try Collectives.bf16ReductionSelfTest(world) : [] {
            ok = ok && c.pass
            let p = world.size, lengths = Collectives.bf16SelfTestLengths.map(String.init).joined(separator: ", ")
            let traffic = c.path == .sharedMemory ? "no MPI traffic (read through the window)"
                : "in \(p) chunks, bytes sent \(c.sentBytes.reduce(0, +)) in all over the ranks (their ring shares, 2(p−1)/p·n each: \(c.ringBytes.reduce(0, +)); "
                    + "every partial to every rank: \(2 * (p - 1) * p * c.values)), \(c.ranksOffTheRing) ranks off their ring share"
            out.printRoot("bf16 allreduce (\(c.path.rawValue)): 60 sums of \(lengths) values (\(c.values) in all), "
                          + "a different rank last each time: \(c.wrongElements) elements off the rank-order sum, \(c.ranksDisagreeing) ranks with other bits; "
                          + "\(traffic)  \(c.pass ? "PASS" : "FAIL")")
        }
        if world.size > 1 {
            let m = try Collectives.logSumExpMergeSelfTest(world)
            ok = ok && m.pass
            out.printRoot("dcp log-sum-exp merge (all-gather, correct, reduce-scatter) over \(m.ranks) ranks, \(m.rows) queries, \(m.emptyRanks) rank\(m.emptyRanks == 1 ? "" : "s") with no key: "
                          + "largest error \(m.worstError) against the float64 merge  \(m.pass ? "PASS" : "FAIL")")
        }
        try world.barrier()
        if !ok { throw CLIError(code: .internal, message: "the MPI layer did not map an MPI failure to its error class, or an allreduce or the DCP merge summed wrongly, or the bf16 allreduce moved more than a ring's share — report this with `mpirun --version`; --allreduce mpi avoids a wrong allreduce", everyRank: true) }
        try Environment.finalize()
    }
}
