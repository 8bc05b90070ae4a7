import Foundation
import Launch
import Testing
import TestSupport

/// What Open MPI leaves when a job's mpirun, or an MPI singleton, is killed outright: the
/// session folder `ompi.HOST.UID/pid.PID` of the dead mpirun (8 MB), the `jf.FAMILY` folder of
/// the dead singleton, and the job's shared-memory segments in /dev/shm. The launch scripts
/// (launch/test, launch/two-hosts, launch/mla-tp) remove them with `mlatp_clear_stale_sessions`
/// (launch/lib/common.sh), and nothing of a job still running. Each job here runs with its own
/// TMPDIR, so only its own session folders are looked at.
@Suite(.serialized, .tags(.mpirun), .skippedInFastLane) struct SessionFolderTests {
    static let hold = ["MLATP_FAULT": "hold-output", "MLATP_FAULT_RANK": "0"]

    /// The entries of every session folder under `tmp`, as `ompi.HOST.UID/ENTRY`.
    static func sessions(_ tmp: URL) -> [String] {
        let top = ((try? FileManager.default.contentsOfDirectory(atPath: tmp.path)) ?? []).filter { $0.hasPrefix("ompi.") }
        return top.flatMap { t in ((try? FileManager.default.contentsOfDirectory(atPath: tmp.path + "/" + t)) ?? []).map { t + "/" + $0 } }.sorted()
    }

    /// Shared-memory segments of this user's jobs.
    static func segments() -> Set<String> {
        Set(((try? FileManager.default.contentsOfDirectory(atPath: "/dev/shm")) ?? []).filter { $0.hasPrefix("vader_segment.") && $0.contains(".\(getuid()).") })
    }

    /// Starts `body` (a job whose rank 0 holds its output in `dir`), and once rank 0 holds it
    /// kills `victims()` outright, then every rank of the job left.
    func killedWhileHeld(_ dir: URL, victims: @escaping () -> [Int32], _ body: @escaping @Sendable () -> MPIJob.Result) -> MPIJob.Result {
        let job = BackgroundJob(body)
        let rank = InterruptedWriteTests.writer(among: { Processes.matching(["mla-tp", "run", dir.path]) }, dir: dir)
        #expect(rank != nil, "rank 0 never held its output in \(dir.path)")
        for pid in victims() { kill(pid, SIGKILL) }
        let r = job.wait()
        for pid in Processes.matching(["mla-tp", "run", dir.path]) { kill(pid, SIGKILL) }
        return r
    }

    @Test func whatKilledJobsLeftIsRemovedAndALiveJobsFolderKept() throws {
        let tmp = try Fixtures.scratch("sessions")
        defer { try? FileManager.default.removeItem(at: tmp) }
        // An mpirun killed outright while its ranks run: its pid.PID folder and segments stay.
        let out = tmp.appendingPathComponent("job")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        let killed = killedWhileHeld(out, victims: { Processes.matching(["mpirun", out.path]) }) {
            MPIJob.run(ranks: 2, ["run", "--output", out.appendingPathComponent("o.safetensors").path], timeout: 60,
                       environment: Self.hold.merging(["TMPDIR": tmp.path]) { $1 })
        }
        #expect(killed.status != 0, "\(killed)")
        // A singleton killed outright: the jf.FAMILY folder of its rank stays.
        let single = tmp.appendingPathComponent("single")
        try FileManager.default.createDirectory(at: single, withIntermediateDirectories: true)
        _ = killedWhileHeld(single, victims: { Processes.matching(["mla-tp", "run", single.path]) }) {
            MPIJob.single(["run", "--output", single.appendingPathComponent("o.safetensors").path], timeout: 60,
                          environment: Self.hold.merging(["TMPDIR": tmp.path]) { $1 })
        }
        usleep(2_000_000)                                   // the singleton's orted notices and ends
        let left = Self.sessions(tmp)
        #expect(left.contains { $0.contains("/pid.") } && left.contains { $0.contains("/jf.") }, "Open MPI leaves these when killed: \(left)")
        // The killed job's segments: its family is the top half of the job id in contact.txt.
        let dead = try #require(left.first { $0.contains("/pid.") })
        let contact = try String(contentsOf: tmp.appendingPathComponent(dead + "/contact.txt"), encoding: .utf8)
        let family = try #require(Int(contact.prefix { $0.isNumber })) >> 16
        let leftSegments = Self.segments().filter { $0.contains(".\(getuid()).\(String(family, radix: 16))") }

        // A live job's folder (this process's pid, so alive) and its family's rank folder stay.
        let host = String(dead.prefix { $0 != "/" })
        let live = tmp.appendingPathComponent("\(host)/pid.\(getpid())"), liveRank = tmp.appendingPathComponent("\(host)/jf.4321")
        try FileManager.default.createDirectory(at: live, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: liveRank.appendingPathComponent("1/0"), withIntermediateDirectories: true)
        try "\(4321 << 16).0;tcp://127.0.0.1:1\n\(getpid())\n".write(to: live.appendingPathComponent("contact.txt"), atomically: true, encoding: .utf8)

        let swept = ChildProcess.run("/bin/bash", ["-c", "source \(MPIJob.repository)/launch/lib/common.sh && mlatp_clear_stale_sessions"],
                                     environment: ["TMPDIR": tmp.path], timeout: 60)
        #expect(swept.status == 0 && swept.stderr.isEmpty, "\(swept)")
        #expect(Self.sessions(tmp) == ["\(host)/jf.4321", "\(host)/pid.\(getpid())"], "left: \(Self.sessions(tmp))")
        #expect(Self.segments().intersection(leftSegments).isEmpty, "segments of the killed job: \(Self.segments().intersection(leftSegments))")
        for name in leftSegments { try? FileManager.default.removeItem(atPath: "/dev/shm/" + name) }
    }
}
