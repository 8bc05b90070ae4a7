import Foundation
import Launch
import Testing

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
