import Foundation
import Testing
import TestSupport

/// A checkpoint shrunk by another program while the job loads it is an input error naming the
/// file (exit 4, one line), never a SIGBUS: each rank reads its slices with `pread` into its own
/// buffers. The window is made reliable with `MLATP_FAULT=hold-load`: once a rank has opened
/// the checkpoint it waits for the file's size to change before it reads a tensor; the test
/// shrinks the file as soon as it sees it open.
@Suite(.serialized, .tags(.mpirun), .skippedInFastLane) struct ChangedCheckpointTests {
    /// `rank`: which ranks hold (all of them see the change alike; one alone fails while the
    /// others already wait in the forward's collective).
    @Test(arguments: ["all", "1"])
    func checkpointShrunkWhileRanksLoadItIsAnInputErrorNamingTheFile(rank: String) throws {
        let ckpt = try Fixtures.scratch("shrunk"), outDir = try Fixtures.scratch("shrunk-out")
        #expect(MPIJob.single(["init", "--out", ckpt.path]).status == 0)
        let weights = ckpt.appendingPathComponent("model.safetensors").path
        let out = outDir.appendingPathComponent("out.safetensors")
        try Data("previous result".utf8).write(to: out)
        let before = try FailureContract.snapshot(outDir)
        let job = BackgroundJob {
            MPIJob.run(ranks: 2, ["run", "--model", ckpt.path, "--output", out.path], timeout: 60,
                       environment: ["MLATP_FAULT": "hold-load", "MLATP_FAULT_RANK": rank])
        }
        // Every holding rank has the file open (and is waiting) before it shrinks.
        let holders = rank == "all" ? 2 : 1
        var open = 0
        for _ in 0..<2000 where open < holders {
            open = Processes.matching(["mla-tp", "run", ckpt.path]).filter { Processes.openFiles($0).contains(weights) }.count
            usleep(10_000)
        }
        #expect(open >= holders, "\(open) of \(holders) ranks opened \(weights)")
        #expect(truncate(weights, 400_000) == 0)
        let r = job.wait()
        try FailureContract.check(r, code: 4, mentions: [weights, "changed while it was being read"], watching: [outDir], before: [before])
        #expect(!r.stderr.contains("Bus error") && r.status != 135, "\(r)")
    }
}
