import Foundation
import Launch
import Testing
import TestSupport

/// One launch policy: the flags `MPILauncher` gives equal what `launch/lib/common.sh` prints.
@Suite struct MPILauncherTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    @Test(arguments: [1, 2, 3, 8])
    func theScriptsAndTheLauncherGiveTheSameFlags(ranks: Int) {
        let script = ChildProcess.run("/bin/bash", ["-c", "source \(Self.repository)/launch/lib/common.sh && MLATP_TIMEOUT=77 mlatp_mpirun_flags \(ranks)"],
                                      timeout: 30)
        #expect(script.status == 0, "\(script)")
        let launcher = MPILauncher(executable: "mla-tp")
        #expect(script.stdout.split(separator: "\n").map(String.init) == launcher.flags(ranks: ranks, timeout: 77))
    }

    /// The most ranks a job may start: `mlatp_max_ranks` (the launch scripts) and `maxRanks` agree.
    @Test(arguments: [1, 2, 3, 4, 5, 64])
    func theScriptsAndTheLauncherBoundTheRanksAlike(cores: Int) {
        let script = ChildProcess.run("/bin/bash", ["-c", "source \(Self.repository)/launch/lib/common.sh && mlatp_max_ranks \(cores)"], timeout: 30)
        #expect(script.status == 0, "\(script)")
        #expect(script.stdout == "\(MPILauncher.maxRanks(cores: cores))\n")
        #expect(MPILauncher.maxRanks(cores: cores) >= 16 && MPILauncher.maxRanks(cores: cores) >= 4 * cores)
    }

    @Test func oversubscribesOnlyPastTheCoresAndAllowsRootOnlyAsRoot() {
        let user = MPILauncher(executable: "x", cores: 2, isRoot: false), root = MPILauncher(executable: "x", cores: 2, isRoot: true)
        #expect(!user.flags(ranks: 2, timeout: 5).contains("--oversubscribe"))
        #expect(user.flags(ranks: 3, timeout: 5).contains("--oversubscribe"))
        #expect(!user.flags(ranks: 1, timeout: 5).contains("--allow-run-as-root"))
        #expect(root.flags(ranks: 1, timeout: 5).contains("--allow-run-as-root"))
        #expect(user.flags(ranks: 2, timeout: 5).contains("OPENBLAS_NUM_THREADS=1"))
    }

    @Test func aChildThatOutlivesItsTimeoutIsKilledAndSaysSo() {
        let r = ChildProcess.run("/bin/sleep", ["30"], timeout: 0.5)
        #expect(r.timedOut && r.seconds < 5, "\(r)")
        let fine = ChildProcess.run("/bin/sh", ["-c", "echo out; echo err >&2; exit 3"], timeout: 10)
        #expect(fine.status == 3 && fine.stdout == "out\n" && fine.stderr == "err\n" && !fine.timedOut)
        #expect(fine.lastLine == "err")
    }

    /// A child that writes far more than a pipe holds still ends (both pipes are drained while it runs).
    @Test func largeOutputDoesNotBlockTheChild() {
        let r = ChildProcess.run("/bin/sh", ["-c", "head -c 3000000 /dev/zero | tr '\\\\0' x; head -c 3000000 /dev/zero | tr '\\\\0' y >&2"],
                                 timeout: 30)
        #expect(r.status == 0 && !r.timedOut && r.stdout.count == 3_000_000 && r.stderr.count == 3_000_000, "\(r.status) \(r.timedOut)")
    }
}

/// mpirun past MPILauncher's backstop: a child process that runs for 13 s, outside the fast lane.
@Suite(.serialized, .tags(.mpirun), .skippedInFastLane) struct MPILauncherStopTests {
    /// Past its backstop (its own --timeout + 10 s) mpirun gets SIGTERM and ``stopGrace`` seconds
    /// before SIGKILL: an mpirun killed outright leaves its session folder (`ompi.HOST.UID/pid.PID`,
    /// 8 MB) and the job's shared-memory segments behind. Here an mpirun that ignores its timeout
    /// and takes 2 s to clean up after SIGTERM (half a second was all it had).
    @Test func mpirunPastItsBackstopGetsTimeToCleanUp() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mlatp-grace-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let fake = dir.appendingPathComponent("mpirun"), cleaned = dir.appendingPathComponent("cleaned").path
        try """
            #!/bin/sh
            sleep 60 & job=$!
            trap 'kill $job; sleep 2; echo done > "\(cleaned)"; exit 143' TERM
            wait $job

            """.write(to: fake, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: fake.path)
        let r = MPILauncher(executable: "/bin/true").run(ranks: 1, [], timeout: 1, environment: ["PATH": dir.path + ":/usr/bin:/bin"])
        #expect(r.timedOut && r.status == 143 && r.seconds < 11 + MPILauncher.stopGrace + 5, "\(r)")
        #expect(FileManager.default.fileExists(atPath: cleaned), "mpirun was killed before it had cleaned up: \(r)")
    }
}
