import Foundation
import Report
import Testing
import TestSupport

/// Jobs across two hosts built by `launch/two-hosts` (two network namespaces and a veth pair):
/// Open MPI starts the second host's daemon through its rsh launcher, and every byte between
/// the hosts crosses the veth over TCP. Each job must pass its own check against the unsharded
/// forward and give what the same job gives on one host; nothing the launcher made may remain.
/// Skipped, with the reason, where the hosts cannot be built (not root, no `ip`).
@Suite(.serialized, .tags(.twoHost), .skippedInFastLane, .enabled(if: TwoHosts.unavailable == nil, Comment(rawValue: TwoHosts.unavailable ?? "")))
struct TwoHostTests {
    /// Runs `args` on two hosts and on one, with `--output`; checks both against the unsharded
    /// forward and each other, that bytes crossed the veth, and that nothing was left behind.
    /// Returns the two reports (two hosts, one host).
    func compare(ranks: Int, slots: String, _ args: [String], minimumCrossing: Int) throws -> (two: RunReport, one: RunReport) {
        let dir = try Fixtures.scratch("two-hosts")
        defer { try? FileManager.default.removeItem(at: dir) }
        let twoOut = dir.appendingPathComponent("two.safetensors").path, oneOut = dir.appendingPathComponent("one.safetensors").path
        let two = TwoHosts.run(ranks, slots: slots, args + ["--json", "--output", twoOut])
        #expect(two.status == 0, "\(two)")
        let names = TwoHosts.names(two)
        #expect(names.count == 4, "the launcher names two namespaces and two veth ends: \(two.stderr)")
        #expect(TwoHosts.leftovers(names).isEmpty, "left behind: \(TwoHosts.leftovers(names))")
        let crossed = try #require(TwoHosts.traffic(two), "no traffic line: \(two.stderr)")
        #expect(crossed.out >= minimumCrossing && crossed.back >= minimumCrossing,
                "the veth carried \(crossed) bytes; the allreduce alone moves \(minimumCrossing) each way")

        let one = MPIJob.run(ranks: ranks, args + ["--json", "--output", oneOut], timeout: 60)
        #expect(one.status == 0, "\(one)")
        let twoReport = try two.decoded(RunReport.self), oneReport = try one.decoded(RunReport.self)
        for (where_, report) in [("two hosts", twoReport), ("one host", oneReport)] {
            let check = try #require(report.check, "\(where_): no check")
            #expect(check.pass && check.relative <= 1e-5, "\(where_): \(check)")
        }
        // The report names each rank's host: two nodes across the veth, one on this machine.
        #expect(Set(twoReport.ranks.compactMap(\.node)) == [0, 1] && Set(twoReport.ranks.compactMap(\.host)).count == 2, "\(twoReport.ranks)")
        #expect(Set(oneReport.ranks.compactMap(\.node)) == [0], "\(oneReport.ranks)")
        #expect(two.stdout.isEmpty == false)
        let a = try Fixtures.output(twoOut), b = try Fixtures.output(oneOut)
        #expect(!a.isEmpty && a.count == b.count)
        let diff = TwoHosts.relativeDifference(a, b)
        #expect(diff <= 1e-6, "two hosts vs one host: relative difference \(diff)")
        return (twoReport, oneReport)
    }

    @Test(arguments: [[String](), ["--decode-steps", "3"]])
    func tpFourWithTwoRanksPerHostGivesTheSingleHostResult(serving: [String]) throws {
        // 19 tokens × 256 hidden floats (prefill); 2 tokens per decode step.
        let bytes = (serving.isEmpty ? 19 : 2) * 256 * 4
        let (two, _) = try compare(ranks: 4, slots: "2,2", ["run", "--seqs", "7,12"] + serving, minimumCrossing: bytes)
        #expect(two.allReducePath == .mpi)
        #expect(two.ranks.first?.communicators?.first?.allReducePath == .mpi, "the world communicator's path")
    }

    @Test func tpTwoOneRankPerHostRunsAnHFCheckpointLikeOneHost() throws {
        let model = try Fixtures.scratch("two-hosts-model")
        defer { try? FileManager.default.removeItem(at: model) }
        let made = MPIJob.single(["init", "--preset", "tiny", "--out", model.path])
        #expect(made.status == 0, "\(made)")
        let (two, one) = try compare(ranks: 2, slots: "1,1", ["run", "--model", model.path], minimumCrossing: 16 * 256 * 4)
        #expect(two.tp == 2 && one.tp == 2)
    }

    /// A decode step's payload is small enough for the shared-memory window, and with one rank
    /// per core the window is used on one host; across hosts it must not be.
    @Test func theSharedMemoryWindowIsUsedOnOneHostAndNeverAcrossHosts() throws {
        let (two, one) = try compare(ranks: 2, slots: "1,1", ["run", "--seqs", "7,12", "--decode-steps", "3"], minimumCrossing: 2 * 256 * 4)
        #expect(two.allReducePath == .mpi, "across hosts: \(String(describing: two.allReducePath))")
        let cpus = ProcessInfo.processInfo.activeProcessorCount
        #expect(one.allReducePath == (cpus >= 2 ? .sharedMemory : .mpi), "one host, \(cpus) CPUs: \(String(describing: one.allReducePath))")
    }

    /// The usual deployment: TP inside a host, DP across hosts. Each group's allreduce stays on
    /// its host (the shared-memory window there, its bytes never on the veth); the gather of the
    /// groups' rows for the check crosses it. Same result as on one host.
    @Test func dataParallelGroupsOneOnEachHostGiveTheSingleHostResult() throws {
        let (two, one) = try compare(ranks: 4, slots: "2,2", ["run", "--dp", "2", "--seqs", "7,1,12,5", "--decode-steps", "2"],
                                     minimumCrossing: 12 * 256 * 4)
        #expect(two.dp == 2 && one.dp == 2 && two.assignment == one.assignment)
        // Group g's ranks are on node g; each group's communicator reduced within its host.
        #expect(two.ranks.map { $0.node ?? -1 } == [0, 0, 1, 1] && two.ranks.map { $0.dpGroup ?? -1 } == [0, 0, 1, 1], "\(two.ranks)")
        let paths = two.ranks.compactMap { $0.communicators?.first { $0.name.hasPrefix("tp group") }?.allReducePath }
        #expect(paths == [.sharedMemory, .sharedMemory, .sharedMemory, .sharedMemory], "each group on one host: \(paths)")
    }

    /// MPI's own view (`MPI_Comm_split_type` SHARED, `MPI_Get_processor_name`), printed by
    /// `diagnose`: ranks on different namespaces are on different nodes with different names.
    @Test(arguments: [(4, "2,2", "node 0 (A): ranks 0, 1; node 1 (B): ranks 2, 3"),
                      (3, "1,2", "node 0 (A): rank 0; node 1 (B): ranks 1, 2")])
    func ranksOnTheTwoHostsAreTwoNodesToMPI(ranks: Int, slots: String, expected: String) throws {
        let r = TwoHosts.run(ranks, slots: slots, ["diagnose"])
        #expect(r.status == 0, "\(r)")
        let hosts = TwoHosts.names(r).filter { $0.hasPrefix("mlatp2h-") }.sorted()
        try #require(hosts.count == 2, "\(r.stderr)")
        let line = expected.replacingOccurrences(of: "(A)", with: "(\(hosts[0]))").replacingOccurrences(of: "(B)", with: "(\(hosts[1]))")
        #expect(r.stdout.contains("placement: \(line)\n"), "\(r)")
        #expect(r.stdout.contains("shared-memory allreduce: not used here"), "\(r)")
        #expect(TwoHosts.leftovers(TwoHosts.names(r)).isEmpty)

        let single = MPIJob.run(ranks: 2, ["diagnose"], timeout: 60)
        #expect(single.stdout.contains("placement: node 0 (") && single.stdout.contains("): ranks 0, 1\n"), "\(single)")
    }

    /// Each host runs on its own half of the cores: every daemon sees the whole machine, and
    /// Open MPI's default binding would put the first rank of both hosts on core 0.
    @Test func eachHostsRanksRunOnThatHostsOwnCores() throws {
        let cpus = ProcessInfo.processInfo.activeProcessorCount
        let r = MPIJob.script(TwoHosts.launcher, ["-n", "2", "--timeout", "60", "--", "/bin/sh", "-c",
                                                  "echo \"$(hostname) $(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' /proc/self/status)\""],
                              timeout: 120)
        #expect(r.status == 0, "\(r)")
        let lines = r.stdout.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }.filter { $0.count == 2 }
        let byHost = Dictionary(lines.map { ($0[0], $0[1]) }, uniquingKeysWith: { a, _ in a })
        try #require(byHost.count == 2, "one line per host: \(r.stdout)")
        if cpus >= 2 {
            let sets = byHost.values.map { list in Set(list.split(separator: ",").flatMap { part -> [Int] in
                let ends = part.split(separator: "-").compactMap { Int($0) }
                return ends.count == 2 ? Array(ends[0]...ends[1]) : ends
            }) }
            #expect(sets[0].isDisjoint(with: sets[1]) && !sets[0].isEmpty && !sets[1].isEmpty, "\(byHost)")
        }
    }

    /// `--link-rate` puts a token bucket on each end of the veth: a 1 MiB allreduce then moves
    /// at most about the rate (plus one 128 KiB bucket), far below the unshaped link.
    @Test func theLinkRateCapsTheAllreduce() throws {
        let dir = try Fixtures.scratch("two-hosts-rate")
        defer { try? FileManager.default.removeItem(at: dir) }
        func probe(_ rate: [String]) throws -> Double {
            let file = dir.appendingPathComponent("rates\(rate.count).json").path
            let r = MPIJob.script(TwoHosts.launcher, ["-n", "2"] + rate + ["--timeout", "120", "--", MPIJob.binary.path ?? "mla-tp", "sweep-step", "--probe",
                                  "--probe-shape", "64,256,256", "--probe-allreduce-bytes", "1048576", "--out", file], timeout: 180)
            #expect(r.status == 0, "\(r)")
            #expect(TwoHosts.leftovers(TwoHosts.names(r)).isEmpty)
            let rates = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: file))) as? [String: Any])
            return try #require((rates["allReduceBytesPerSecond"] as? NSNumber)?.doubleValue)
        }
        let capped = try probe(["--link-rate", "100mbit"]), free = try probe([])
        let bucket = 100e6 / 8 * 1_048_576 / Double(1_048_576 - 131_072)      // the rate, helped by one full bucket
        #expect(capped <= 1.2 * bucket, "100mbit: the allreduce moved \(capped / 1e6) MB/s")
        #expect(free > 5 * capped, "unshaped \(free / 1e6) MB/s against \(capped / 1e6) MB/s shaped")
    }

    enum Ending: String, CaseIterable, Sendable { case success, failure, timeout, interrupt, terminate, hangup }

    /// Success, a failing program, the timeout (124, as the script's header says), Ctrl-C
    /// (SIGINT), SIGTERM and SIGHUP all end with the namespaces, the veth, the work folder and
    /// Open MPI's session folders removed, and within a bounded time.
    @Test(arguments: Ending.allCases)
    func everyWayOutRemovesTheHosts(ending: Ending) {
        let program: [String], limit: Int, signal: Int32?
        switch ending {
        case .success: (program, limit, signal) = (["/bin/true"], 60, nil)
        case .failure: (program, limit, signal) = (["/bin/false"], 60, nil)
        case .timeout: (program, limit, signal) = (["/bin/sleep", "120"], 3, nil)
        case .interrupt: (program, limit, signal) = (["/bin/sleep", "120"], 60, SIGINT)
        case .terminate: (program, limit, signal) = (["/bin/sleep", "120"], 60, SIGTERM)
        case .hangup: (program, limit, signal) = (["/bin/sleep", "120"], 60, SIGHUP)
        }
        // A signal is sent when the test's own limit (3 s) runs out, with the job still running.
        let r = MPIJob.script(TwoHosts.launcher, ["-n", "4", "--timeout", "\(limit)", "--"] + program,
                              timeout: signal == nil ? Double(limit + 60) : 3, grace: 30, stopSignal: signal ?? SIGTERM)
        let expected: Int32 = switch ending {
        case .success: 0
        case .failure: 1
        case .timeout: 124        // mpirun's --timeout ends it with 110; the launcher says 124
        case .interrupt: 130
        case .terminate: 143
        case .hangup: 129
        }
        #expect(r.status == expected, "\(ending): \(r)")
        #expect(r.seconds < 20, "\(ending) took \(r.seconds) s")
        let names = TwoHosts.names(r)
        #expect(names.count == 4, "\(r.stderr)")
        #expect(TwoHosts.leftovers(names).isEmpty, "\(ending) left \(TwoHosts.leftovers(names))")
        if ending == .timeout { #expect(r.stderr.contains("outlived its timeout of 3 s"), "\(r.stderr)") }
    }

    /// The program's own exit 110 before the limit stays its own: only a job out of time is 124.
    @Test func aProgramsOwnExit110IsNotATimeout() {
        let r = MPIJob.script(TwoHosts.launcher, ["-n", "2", "--timeout", "60", "--", "/bin/sh", "-c", "exit 110"], timeout: 120)
        #expect(r.status == 110 && !r.stderr.contains("outlived"), "\(r)")
    }

    /// Each step of the set-up, from the sweep of killed runs to the last reading before the
    /// job: `ip` there is held (a slow kernel) and the launcher gets a signal while it runs. What
    /// the step makes exists before the launcher can note it, so a clean-up that removes only
    /// what it noted leaves it behind (SIGTERM during `ip netns add` left a namespace).
    static let setUpSteps: [(step: String, signal: Int32)] = [
        ("netns list", SIGTERM), ("netns add", SIGTERM), ("netns add", SIGINT), ("netns add", SIGHUP),
        ("link set lo up", SIGTERM), ("disable_ipv6", SIGTERM), ("type veth", SIGTERM), ("address add", SIGTERM),
        ("link set m2h", SIGTERM), ("tx_bytes", SIGINT),
    ]

    @Test(arguments: setUpSteps)
    func aSignalAtEachStepOfTheSetUpLeavesNothing(step: String, signal: Int32) throws {
        let (r, pid) = try TwoHosts.held(at: step, ["-n", "2", "--timeout", "60", "--", "/bin/sleep", "60"]) { kill($0, signal) }
        let launcher = try #require(pid, "the launcher never ran `ip … \(step)`: \(r)")
        #expect(r.status == 128 + signal && r.seconds < 40, "\(step), signal \(signal): \(r)")
        #expect(TwoHosts.leftovers(ofLauncher: launcher).isEmpty, "\(step), signal \(signal) left \(TwoHosts.leftovers(ofLauncher: launcher))")
    }

    /// A launcher killed outright (SIGKILL, its whole process group) at a step of the set-up,
    /// before that step ran, cannot clean up: the next run removes what it left — its work
    /// folder alone (killed before the first namespace), or the namespaces too — and says so.
    @Test(arguments: ["netns add", "type veth", "tx_bytes"])
    func aRunKilledOutrightDuringTheSetUpIsCleanedUpByTheNextOne(step: String) throws {
        let (killed, pid) = try TwoHosts.held(at: step, ["-n", "2", "--timeout", "60", "--", "/bin/true"], abandon: true) { kill(-$0, SIGKILL) }
        let launcher = try #require(pid, "the launcher never ran `ip … \(step)`: \(killed)")
        let left = TwoHosts.leftovers(ofLauncher: launcher)
        #expect(left.contains { $0.hasPrefix(TwoHosts.tmp + "/mlatp2h-\(launcher)-") }, "SIGKILL at \(step) leaves the work folder: \(left)")
        let next = MPIJob.script(TwoHosts.launcher, ["-n", "2", "--", "/bin/true"], timeout: 60)
        #expect(next.status == 0, "\(next)")
        #expect(next.stderr.contains("left by a run that was killed") && next.stderr.contains("mlatp2h-\(launcher)-"), "\(next)")
        #expect(TwoHosts.leftovers(ofLauncher: launcher).isEmpty, "still there: \(TwoHosts.leftovers(ofLauncher: launcher))")
    }

    /// A launcher killed outright (SIGKILL) cannot clean up; the next run removes what it left.
    /// README's `launch/two-hosts -n 4 -- mla-tp --preset tiny` before `launch/mla-tp` has put
    /// mla-tp on PATH: the checkout's own build runs.
    @Test func mlaTpByNameRunsThisCheckoutsBuildWhenItIsNotOnPath() {
        let r = MPIJob.script(TwoHosts.launcher, ["-n", "2", "--", "mla-tp", "--preset", "tiny"], timeout: 120,
                              environment: ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin"])
        #expect(r.status == 0 && r.stdout.contains("PASS"), "\(r)")
    }

    @Test func aRunKilledOutrightIsCleanedUpByTheNextOne() {
        let killed = MPIJob.script(TwoHosts.launcher, ["-n", "2", "--timeout", "8", "--", "/bin/sleep", "120"],
                                   timeout: 3, grace: 0, stopSignal: SIGKILL)
        let names = TwoHosts.names(killed)
        #expect(names.count == 4, "\(killed.stderr)")
        #expect(!TwoHosts.leftovers(names).filter { $0.hasPrefix("mlatp2h-") }.isEmpty, "SIGKILL leaves the namespaces")
        #expect(!TwoHosts.workFolders(names).isEmpty, "SIGKILL leaves the work folder")
        let next = MPIJob.script(TwoHosts.launcher, ["-n", "2", "--", "/bin/true"], timeout: 60)
        #expect(next.status == 0, "\(next)")
        for ns in names where ns.hasPrefix("mlatp2h-") {
            #expect(next.stderr.contains(ns) && next.stderr.contains("left by a run that was killed"), "\(next)")
        }
        #expect(TwoHosts.leftovers(names).isEmpty, "still there: \(TwoHosts.leftovers(names))")
        #expect(TwoHosts.workFolders(names).isEmpty, "still there: \(TwoHosts.workFolders(names))")
    }
}

/// What `launch/two-hosts` refuses, before it makes anything: bad usage (2), and a machine
/// that cannot build the hosts (3). Runs everywhere; the not-root case runs as `nobody`.
@Suite(.serialized, .tags(.twoHost), .skippedInFastLane) struct TwoHostLauncherRefusalTests {
    @Test(arguments: [
        (["-n", "4"], "no program to run"),
        (["-n", "1", "--", "/bin/true"], "at least 2 ranks"),
        (["-n", "x", "--", "/bin/true"], "whole number of ranks"),
        (["-n", "4", "--slots", "3,2", "--", "/bin/true"], "places 5 ranks, -n asks for 4"),
        (["-n", "4", "--slots", "0,4", "--", "/bin/true"], "two positive counts"),
        (["-n", "2", "--timeout", "0", "--", "/bin/true"], "positive number of seconds"),
        (["-n", "2", "--hosts", "3", "--", "/bin/true"], "unknown option '--hosts'"),
        (["-n", "2", "--link-rate", "1Gb", "--", "/bin/true"], "kbit, mbit or gbit"),
        (["-n", "2", "--link-rate", "0mbit", "--", "/bin/true"], "kbit, mbit or gbit"),
        (["-n", "2", "--", "/nonexistent/mla-tp"], "'/nonexistent/mla-tp' is not an executable program"),
        (["-n", "999", "--", "/bin/true"], "-n 999: at most \(16 > 4 * ProcessInfo.processInfo.activeProcessorCount ? 16 : 4 * ProcessInfo.processInfo.activeProcessorCount) ranks"),
    ])
    func badUsageIsRefusedWithOneLine(args: [String], says: String) {
        let r = MPIJob.script(TwoHosts.launcher, args, timeout: 30)
        #expect(r.status == 2, "\(args): \(r)")
        #expect(r.stderr.hasPrefix("launch/two-hosts: ") && r.stderr.contains(says), "\(args): \(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
    }

    @Test func withoutRootItRefusesAndSaysWhy() throws {
        var command = TwoHosts.launcher, args = ["-n", "2", "--", "/bin/true"]
        if getuid() == 0 {
            // As root: run as the user nobody, from a copy in a directory that user can read.
            let dir = try Fixtures.scratch("two-hosts-nobody")
            defer { try? FileManager.default.removeItem(at: dir) }
            let launch = dir.appendingPathComponent("launch")
            try FileManager.default.copyItem(at: TwoHosts.root.appendingPathComponent("launch"), to: launch)
            for path in [dir.path, launch.path] { try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: path) }
            args = ["--reuid=65534", "--regid=65534", "--clear-groups", launch.appendingPathComponent("two-hosts").path] + args
            command = "/usr/bin/setpriv"
            let r = MPIJob.script(command, args, timeout: 30)
            #expect(r.status == 3 && r.stderr.contains("need root (running as uid 65534)"), "\(r)")
            return
        }
        let r = MPIJob.script(command, args, timeout: 30)
        #expect(r.status == 3 && r.stderr.contains("need root"), "\(r)")
    }

    /// A transport list that names no Open MPI transport, or drops the only one that crosses
    /// the hosts (tcp) or the one a rank uses to itself (self): MPI_Init would fail with exit 1
    /// and, under -q, no line at all. Refused before anything is made (checked after the root
    /// check, with Open MPI's own list of transports).
    @Test(.enabled(if: getuid() == 0, "the transport list is checked once root is"), arguments: [
        ("bogus", "'bogus' is not one of this Open MPI's transports"),
        ("tcp,bogus,self", "'bogus' is not one of this Open MPI's transports"),
        ("vader,self", "the hosts reach each other only over tcp"),
        ("tcp,vader", "the hosts reach each other only over tcp"),
        ("^tcp", "the hosts reach each other only over tcp"),
        ("", "the hosts reach each other only over tcp"),
    ])
    func aTransportListThatCannotJoinTheHostsIsRefused(btl: String, says: String) {
        let r = MPIJob.script(TwoHosts.launcher, ["-n", "2", "--btl", btl, "--", "/bin/true"], timeout: 30)
        #expect(r.status == 2, "--btl '\(btl)': \(r)")
        #expect(r.stderr.hasPrefix("launch/two-hosts: --btl \(btl): ") && r.stderr.contains(says), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
    }

    @Test(.enabled(if: getuid() == 0, "the missing-ip case is reached only as root"))
    func withoutIpItRefusesAndSaysWhatToInstall() throws {
        // PATH: one directory linking every program of /usr/bin and /usr/sbin but ip.
        let dir = try Fixtures.scratch("no-ip")
        defer { try? FileManager.default.removeItem(at: dir) }
        for source in ["/usr/sbin", "/usr/bin"] {
            for name in try FileManager.default.contentsOfDirectory(atPath: source) where name != "ip" {
                try? FileManager.default.createSymbolicLink(atPath: dir.appendingPathComponent(name).path, withDestinationPath: "\(source)/\(name)")
            }
        }
        let r = MPIJob.script(TwoHosts.launcher, ["-n", "2", "--", "/bin/true"], timeout: 30, environment: ["PATH": dir.path])
        #expect(r.status == 3 && r.stderr.contains("'ip' is missing — apt-get install -y iproute2"), "\(r)")
    }
}
