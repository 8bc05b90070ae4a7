import Foundation
import Launch
import Testing

/// Runs the built `mla-tp` under a real `mpirun -n K` with the launch policy every script and
/// command uses (`MPILauncher`), for tests that prove behaviour across processes.
public enum MPIJob {
    public typealias Result = ChildProcess.Result

    /// The repository this test was built from.
    public static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    /// The `mla-tp` binary under test — `$MLATP_BIN`, else the one beside the test bundle in the
    /// build directory — and whether it was built from this tree: its `--version` must carry the
    /// tree id `scripts/tree-id` computes now. nil binary: none was found.
    public static let binary: (path: String?, problem: String?) = {
        var candidates: [String] = []
        if let path = ProcessInfo.processInfo.environment["MLATP_BIN"] { candidates.append(path) }
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for _ in 0..<4 {
            candidates.append(dir.appendingPathComponent("mla-tp").path)
            dir = dir.deletingLastPathComponent()
        }
        let build = "build it from this tree with `swift build -c release -Xswiftc -enable-testing` (launch/test does)"
        guard let path = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            return (nil, "no mla-tp binary in $MLATP_BIN or beside the tests — \(build)")
        }
        return (path, provenanceProblem(of: path, build: build))
    }()

    /// Why the binary at `path` is not the one this tree builds, or nil when it is.
    public static func provenanceProblem(of path: String, build: String) -> String? {
        let tree = ChildProcess.run("/bin/sh", [repository + "/scripts/tree-id", repository], timeout: 30)
        let version = ChildProcess.run(path, ["--version"], timeout: 30)
        let want = tree.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let have = version.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        guard tree.status == 0, !want.isEmpty else { return "scripts/tree-id failed: \(tree)" }
        return have == "mla-tp tree \(want)" ? nil
            : "\(path) reports \"\(have)\" but this tree is \(want): it was built from other sources — \(build)"
    }

    static var launcher: MPILauncher? { binary.path.map { MPILauncher(executable: $0) } }

    /// No job could run: records a test failure that says why, so that no test passes without
    /// running anything (not even one that expects a failure), and returns a result no check
    /// of a real job accepts (no exit code, no output).
    static func noBinary(sourceLocation: SourceLocation) -> Result {
        let problem = binary.problem ?? "no mla-tp binary"
        Issue.record("no mla-tp job ran: \(problem)", sourceLocation: sourceLocation)
        return Result(status: -1, stdout: "", stderr: problem, seconds: 0, timedOut: false)
    }

    /// `mpirun -n ranks mla-tp args…` under the launch policy; `timeout` bounds the whole job.
    public static func run(ranks: Int, _ args: [String], timeout: Double = 60, environment: [String: String] = [:],
                           mpirunFlags: [String] = [], sourceLocation: SourceLocation = #_sourceLocation) -> Result {
        guard binary.problem == nil, let launcher else { return noBinary(sourceLocation: sourceLocation) }
        return launcher.run(ranks: ranks, args, timeout: Int(timeout.rounded(.up)), mpirunFlags: mpirunFlags, environment: environment)
    }

    /// `mla-tp args…` as a plain process (MPI singleton).
    public static func single(_ args: [String], timeout: Double = 60, environment: [String: String] = [:],
                              sourceLocation: SourceLocation = #_sourceLocation) -> Result {
        guard binary.problem == nil, let launcher else { return noBinary(sourceLocation: sourceLocation) }
        return launcher.single(args, timeout: Int(timeout.rounded(.up)), environment: environment)
    }

    /// A launch script (e.g. `launch/two-hosts`) with its arguments. Past `timeout` it gets
    /// `stopSignal` and `grace` seconds to clean up before `SIGKILL`.
    public static func script(_ path: String, _ args: [String], timeout: Double, grace: Double = 30,
                              stopSignal: Int32 = SIGTERM, environment: [String: String] = [:]) -> Result {
        var env = environment
        env["SWIFT_BACKTRACE"] = "enable=no"
        if getuid() == 0 { env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"; env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1" }
        return ChildProcess.run(path, args, environment: env, timeout: timeout, grace: grace, stopSignal: stopSignal)
    }
}

/// Approximate equality with a stated tolerance: |a − b| ≤ atol + rtol·|b|.
public func isClose(_ a: Float, _ b: Float, rtol: Float = 1e-5, atol: Float = 1e-6) -> Bool {
    abs(a - b) <= atol + rtol * abs(b)
}

/// True when every pair is close.
public func allClose(_ a: [Float], _ b: [Float], rtol: Float = 1e-5, atol: Float = 1e-6) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { isClose($0, $1, rtol: rtol, atol: atol) }
}

extension ChildProcess.Result {
    /// The job's standard output as one JSON document of `type` (a report's own Codable type).
    public func decoded<T: Decodable>(_ type: T.Type) throws -> T {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return try decoder.decode(T.self, from: Data(stdout.utf8))
    }
}

/// The exit statuses mpirun itself gives when a job ends without mla-tp's own line (Open MPI
/// 4.1.4 under the launch policy's `-q`, measured): the only class such a job can be held to.
public enum MPIRunExit {
    /// A rank was ended by `signal`: mpirun exits 128 + the signal.
    public static func signaled(_ signal: Int32) -> Int32 { 128 + signal }
    /// mpirun's `--timeout` ended a job that hung.
    public static let timedOut: Int32 = 110
    /// `MPI_Init` failed on a rank (no transport between the ranks): Open MPI's fatal handler.
    public static let initFailed: Int32 = 1
}
