import Foundation
import Testing
import TestSupport

/// A job stopped while it writes its output (SIGTERM or SIGINT to mpirun, SIGKILL to the rank,
/// SIGTERM to `init`) leaves the old output as it was and nothing behind. The window is made
/// reliable with `MLATP_FAULT=hold-output`: the writing rank, its file written but not linked
/// in, waits there until a termination notice arrives; the test signals once it sees that
/// unnamed file open in the rank (`/proc/PID/fd` → `DIR/#inode (deleted)`).
@Suite(.serialized, .tags(.mpirun), .skippedInFastLane) struct InterruptedWriteTests {
    /// The first of `pids` that holds a file being written in `dir` open, within 20 s: an
    /// unnamed one (`O_TMPFILE`: `DIR/#inode (deleted)`), or a temporary name beside the outputs.
    static func writer(among pids: () -> [Int32], dir: URL) -> Int32? {
        Processes.first(of: pids) { $0.hasPrefix(dir.path + "/") && ($0.hasSuffix("(deleted)") || $0.contains("/.")) }
    }

    static let hold = ["MLATP_FAULT": "hold-output", "MLATP_FAULT_RANK": "0"]

    /// Runs a job over an existing output whose rank 0 holds its finished output; once it holds
    /// it, `stop(mpirun, rank)` ends the job. The old output must be unchanged, nothing left behind.
    func expectStoppedWhileHeld(_ tag: String, stop: (_ mpirun: [Int32], _ rank: Int32) -> Void) throws {
        let dir = try Fixtures.scratch(tag)
        let out = dir.appendingPathComponent("out.safetensors")
        try Data("previous result".utf8).write(to: out)
        let before = try FailureContract.snapshot(dir)
        let job = BackgroundJob { MPIJob.run(ranks: 2, ["run", "--output", out.path], timeout: 60, environment: Self.hold) }
        let rank = Self.writer(among: { Processes.matching(["mla-tp", "run", out.path]) }, dir: dir)
        #expect(rank != nil, "rank 0 never held an unnamed output file in \(dir.path)")
        let mpirun = Processes.matching(["mpirun", out.path])
        #expect(mpirun.count == 1)
        if let rank { stop(mpirun, rank) }
        let r = job.wait()
        #expect(r.status != 0 && !r.timedOut && r.seconds < 20, "\(r)")
        #expect(try FailureContract.snapshot(dir) == before, "the old output unchanged, nothing left behind: \(r)")
    }

    /// mpirun gets `signal` while rank 0 holds its finished output: Open MPI sends SIGCONT at
    /// once and SIGTERM a second later, and the rank must not link the file in within that second.
    @Test(arguments: [SIGTERM, SIGINT])
    func signalToMpirunWhileTheOutputIsWrittenLeavesTheOldOutputAndNothingElse(signal: Int32) throws {
        try expectStoppedWhileHeld("interrupt") { mpirun, _ in for pid in mpirun { kill(pid, signal) } }
    }

    /// A rank killed outright while it holds the written file: the unnamed file dies with it.
    @Test func rankKilledWhileTheOutputIsWrittenLeavesNothingBehind() throws {
        try expectStoppedWhileHeld("killed") { _, rank in kill(rank, SIGKILL) }
    }

    /// `init` stopped while it holds its two files: the old checkpoint stays whole (its config
    /// and weights both as they were), a new one is not created at all, nothing is left anywhere.
    @Test func initStoppedBeforeItLinksItsFilesLeavesTheTargetAsItWas() throws {
        let parent = try Fixtures.scratch("init-stop")
        let old = parent.appendingPathComponent("old"), new = parent.appendingPathComponent("new")
        #expect(MPIJob.single(["init", "--out", old.path, "--seed", "1"]).status == 0)
        let before = try FailureContract.snapshot(parent), oldBefore = try FailureContract.snapshot(old)
        for target in [old, new] {
            let job = BackgroundJob { MPIJob.single(["init", "--out", target.path, "--seed", "2", "--layers", "2"], timeout: 60, environment: Self.hold) }
            let pid = Self.writer(among: { Processes.matching(["mla-tp", "init", target.path]) }, dir: target == old ? old : parent)
            #expect(pid != nil, "init never held its files")
            if let pid { kill(pid, SIGTERM) }
            let r = job.wait()
            #expect(r.status != 0 && !r.timedOut, "\(r)")
            #expect(try FailureContract.snapshot(parent) == before && FailureContract.snapshot(old) == oldBefore, "\(target.lastPathComponent): \(r)")
            #expect(!FileManager.default.fileExists(atPath: new.path))
        }
    }

    /// A 255-byte output name is written: no temporary name longer than the destination's is needed.
    @Test func outputWithTheLongestNameIsWrittenAndNothingElse() throws {
        let dir = try Fixtures.scratch("long")
        let name = String(repeating: "x", count: 255 - ".safetensors".count) + ".safetensors"
        let r = MPIJob.run(ranks: 2, ["run", "--output", dir.appendingPathComponent(name).path], timeout: 60)
        #expect(r.status == 0, "\(r)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == [name])
    }
}
