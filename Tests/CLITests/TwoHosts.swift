import Foundation
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

    /// Those of `names` still present: as namespaces (`ip netns list`) or interfaces here (`ip -o link`).
    static func leftovers(_ names: [String]) -> [String] {
        let listed = MPIJob.script("/usr/bin/env", ["sh", "-c", "ip netns list; ip -o link show"], timeout: 20).stdout
        return names.filter { listed.contains($0) }
    }

    /// The work folders (hostfile, host map) of the runs that made the namespaces among `names`
    /// that are still in the temporary directory.
    static func workFolders(_ names: [String]) -> [String] {
        let tmp = ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp"
        let ids = Set(names.filter { $0.hasPrefix("mlatp2h-") }.map { String($0.dropLast(2)) })   // mlatp2h-PID-XXXX
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: tmp)) ?? []
        return entries.filter { e in ids.contains { e.hasPrefix($0 + ".") } }.map { tmp + "/" + $0 }
    }

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
