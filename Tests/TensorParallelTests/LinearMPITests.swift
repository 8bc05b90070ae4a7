import Testing
import TestSupport

/// The column → row pair under real `mpirun -n K`.
@Suite(.serialized) struct LinearMPITests {
    @Test(arguments: [1, 2, 3, 4, 8])
    func shardedPairEqualsUnshardedResult(ranks: Int) {
        let r = MPIJob.run(ranks: ranks, ["linear", "--hidden", "96"])
        #expect(r.status == 0, "\(r)")
        #expect(r.stdout.contains("PASS"), "\(r)")
        #expect(r.stdout.contains("tp=\(ranks)"))
        // Every rank's shard appears in the table with its local shapes.
        #expect(r.stdout.contains("[\(96 / ranks), 64]"), "\(r)")
    }

    @Test func indivisibleWidthFailsClearlyOnEveryRankWithinTenSeconds() {
        let r = MPIJob.run(ranks: 4, ["linear", "--hidden", "90"], timeout: 30)
        #expect(r.status != 0 && !r.timedOut, "\(r)")
        #expect(r.seconds < 10, "\(r)")
        #expect(r.stderr.contains("90") && r.stderr.contains("tp=4"), "\(r)")
        #expect(r.stderr.components(separatedBy: "mla-tp: rank").count == 2, "printed once: \(r)")
    }
}
