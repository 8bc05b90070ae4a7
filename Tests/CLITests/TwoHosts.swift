import Foundation
import Testing
import TestSupport

/// `launch/two-hosts`: two network namespaces joined by a veth pair, each a host to Open MPI.
/// See docs/multi-node.md.
enum TwoHosts {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let launcher = root.appendingPathComponent("launch/two-hosts").path

    /// Why two hosts cannot be built here (not root, no `ip`, no network namespaces or veth), or nil.
    static let unavailable: String? = {
        if getuid() != 0 { return "launch/two-hosts needs root to create network namespaces (running as uid \(getuid()))" }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        if !path.split(separator: ":").contains(where: { FileManager.default.isExecutableFile(atPath: "\($0)/ip") }) {
            return "launch/two-hosts needs `ip` (iproute2) on PATH"
        }
        // Without the launcher, so that a broken launcher fails the tests instead of skipping them:
        // a veth pair inside a throwaway network namespace, gone when the command ends.
        let probe = MPIJob.script("/usr/bin/env", ["unshare", "--net", "ip", "link", "add", "probe0", "type", "veth", "peer", "name", "probe1"],
                                  timeout: 20)
        if probe.status != 0 { return "this machine cannot create network namespaces with a veth pair: \(probe.stderr.split(separator: "\n").last ?? "")" }
        return nil
    }()

    /// `launch/two-hosts -n N [--slots A,B] -- mla-tp ARGS…` with the built binary.
    static func run(_ n: Int, slots: String? = nil, _ args: [String], timeout: Int = 120) -> MPIJob.Result {
        MPIJob.script(launcher, ["-n", "\(n)", "--timeout", "\(timeout)"] + (slots.map { ["--slots", $0] } ?? [])
                      + ["--", MPIJob.binary.path ?? "mla-tp"] + args, timeout: Double(timeout + 60))
    }

    /// The run's namespaces and veth ends, from the launcher's line that names the hosts.
    static func names(_ r: MPIJob.Result) -> [String] {
        guard let line = r.stderr.split(separator: "\n").first(where: { $0.contains("runs mpirun") }) else { return [] }
        let words = line.split(whereSeparator: { " ,();–".contains($0) }).map(String.init)
        return Array(Set(words.filter { $0.hasPrefix("mlatp2h-") || $0.hasPrefix("m2h") }))
    }

    /// The temporary directory the launcher and Open MPI write in.
    static let tmp = ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp"

    static func tmpEntries(_ keep: (String) -> Bool) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: tmp)) ?? []).filter(keep).map { tmp + "/" + $0 }
    }

    /// Those of `names` still present — as namespaces (`ip netns list`) or interfaces here (`ip -o
    /// link`) — and the work and Open MPI session folders of their runs.
    static func leftovers(_ names: [String]) -> [String] {
        let listed = MPIJob.script("/usr/bin/env", ["sh", "-c", "ip netns list; ip -o link show"], timeout: 20).stdout
        let hosts = names.filter { $0.hasPrefix("mlatp2h-") }
        return names.filter { listed.contains($0) } + workFolders(names) + tmpEntries { e in hosts.contains { e.hasPrefix("ompi.\($0).") } }
    }

    /// The work folders (hostfile, host map) of the runs that made the namespaces among `names`
    /// that are still in the temporary directory.
    static func workFolders(_ names: [String]) -> [String] {
        let ids = Set(names.filter { $0.hasPrefix("mlatp2h-") }.map { String($0.dropLast(2)) })   // mlatp2h-PID-XXXX
        return tmpEntries { e in ids.contains { e.hasPrefix($0 + ".") } }
    }

    /// What the runs of the launcher with pid `pid` left, all named after it (`mlatp2h-PID-…`):
    /// namespaces (the veth ends live in them), work folders, Open MPI's session folders.
    static func leftovers(ofLauncher pid: Int32) -> [String] {
        let mark = "mlatp2h-\(pid)-"
        let namespaces = MPIJob.script("/usr/bin/env", ["ip", "netns", "list"], timeout: 20).stdout.split(separator: "\n")
            .compactMap { $0.split(separator: " ").first.map(String.init) }.filter { $0.hasPrefix(mark) }
        return namespaces + tmpEntries { $0.hasPrefix(mark) || $0.hasPrefix("ompi." + mark) }
    }

    /// Runs the launcher with `args` in its own process group, the first `ip` call whose command
    /// line contains `step` held for 3 s before it runs (a slow kernel), and calls `stop` with the
    /// launcher's pid (its process group's id) while it is held there. With `abandon`, the held
    /// call then never runs (as when the launcher and its `ip` are killed together: `timeout`,
    /// which runs each `ip`, has a process group of its own). Returns the launcher's result and
    /// pid; nil pid when it never reached `step`.
    static func held(at step: String, _ args: [String], abandon: Bool = false, stop: (Int32) -> Void) throws -> (result: MPIJob.Result, pid: Int32?) {
        let dir = try Fixtures.scratch("two-hosts-held")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/sbin:/usr/bin:/sbin:/bin"
        let ip = try #require(path.split(separator: ":").map { "\($0)/ip" }.first { FileManager.default.isExecutableFile(atPath: $0) })
        let shim = dir.appendingPathComponent("ip"), mark = dir.appendingPathComponent("held").path, pidFile = dir.appendingPathComponent("pid").path
        try """
            #!/bin/sh
            case "$*" in *\(shellQuoted(step))*) if mkdir \(shellQuoted(mark)) 2>/dev/null; then
                for _ in $(seq 60); do [ ! -e \(shellQuoted(mark + "/abandon")) ] || exit 1; sleep 0.05; done; fi;; esac
            exec \(shellQuoted(ip)) "$@"

            """.write(to: shim, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: shim.path)
        let job = BackgroundJob {
            MPIJob.script("/usr/bin/setsid", ["-w", "/bin/sh", "-c", "echo $$ > \"$0\" && exec \"$@\"", pidFile, launcher] + args,
                          timeout: 120, environment: ["PATH": dir.path + ":" + path])
        }
        var pid: Int32?
        for _ in 0..<3000 where pid == nil {
            if FileManager.default.fileExists(atPath: mark) { pid = (try? String(contentsOfFile: pidFile, encoding: .utf8)).flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) } }
            if pid == nil { usleep(10_000) }
        }
        if abandon { FileManager.default.createFile(atPath: mark + "/abandon", contents: nil) }
        if let pid { stop(pid) }
        return (job.wait(), pid)
    }

    static func shellQuoted(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }

    /// Bytes the veth carried each way, from the launcher's last line.
    static func traffic(_ r: MPIJob.Result) -> (out: Int, back: Int)? {
        guard let line = r.stderr.split(separator: "\n").last(where: { $0.contains("the veth carried") }) else { return nil }
        let numbers = line.split(separator: " ").compactMap { Int($0) }
        return numbers.count == 2 ? (numbers[0], numbers[1]) : nil
    }

    /// max |a − b| / max |b|: the relative difference the tests bound.
    static func relativeDifference(_ a: [Float], _ b: [Float]) -> Float {
        let scale = b.map(abs).max() ?? 1
        return (zip(a, b).map { abs($0 - $1) }.max() ?? .infinity) / scale
    }
}
