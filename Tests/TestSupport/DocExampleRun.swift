import Foundation
import Launch
import Testing

/// Runs a checked example's commands as a reader would type them: in one bash session in the
/// repository root, one after another, with the
/// built `mla-tp` first on PATH and the environment `launch/test` runs in, plus Open MPI's own
/// `OMPI_MCA_rmaps_base_oversubscribe=1` so that `mpirun -n 4` also starts on fewer cores.
public enum DocExampleRun {
    /// What one command printed, stdout and stderr in the order they came, and its status.
    public struct Output: Sendable {
        public var status: Int32
        public var lines: [String]
        public var timedOut: Bool
    }

    /// The environment the commands run in, or nil (with a recorded issue) when there is no
    /// binary built from this tree.
    static func environment(sourceLocation: SourceLocation) -> [String: String]? {
        guard MPIJob.binary.problem == nil, let binary = MPIJob.binary.path else {
            _ = MPIJob.noBinary(sourceLocation: sourceLocation)
            return nil
        }
        let bin = URL(fileURLWithPath: binary).deletingLastPathComponent().path
        var env = ["PATH": bin + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"),
                   "OPENBLAS_NUM_THREADS": "1", "SWIFT_BACKTRACE": "enable=no", "OMPI_MCA_rmaps_base_oversubscribe": "1"]
        if getuid() == 0 { env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"; env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1" }
        return env
    }

    /// The line printed after each command's output: the marker and the command's status.
    static let marker = "::mla-tp-doc-example-end::"

    /// Runs every command of `example` in one bash session, in order (a variable set by one is
    /// seen by the next, and `$?` is the previous command's status); nil when no binary could
    /// run them. Past `timeout` the session ends, and the commands it did not finish print nothing.
    public static func run(_ example: DocExample, timeout: Double = 300,
                           sourceLocation: SourceLocation = #_sourceLocation) -> [Output]? {
        guard let env = environment(sourceLocation: sourceLocation) else { return nil }
        var script = "exec 2>&1 </dev/null; cd \"$0\" || exit 1\n"
        for command in example.commands {
            script += command.text + "\n__status=$?; printf '\\n%s %d\\n' \(marker) $__status; (exit $__status)\n"
        }
        // `timeout` signals its whole process group, so a hung mpirun goes with its ranks.
        let r = ChildProcess.run("/usr/bin/env", ["timeout", "-k", "5", "\(Int(timeout))", "bash", "-c", script, MPIJob.repository],
                                 environment: env, timeout: timeout + 10)
        var outputs: [Output] = []
        var rest = Substring(r.stdout)
        for _ in example.commands {
            guard let end = rest.range(of: "\n" + marker + " ") else { break }
            let status = Int32(rest[end.upperBound...].prefix { $0.isNumber }) ?? -1
            outputs.append(Output(status: status, lines: rest[..<end.lowerBound].components(separatedBy: "\n"), timedOut: false))
            rest = rest[end.upperBound...].drop { $0 != "\n" }.dropFirst()
        }
        let timedOut = r.timedOut || r.status == 124
        while outputs.count < example.commands.count {
            outputs.append(Output(status: -1, lines: rest.components(separatedBy: "\n"), timedOut: timedOut))
            rest = ""
        }
        return outputs
    }

    /// The Markdown line as a source location, so that a failure names the example's file and line.
    public static func location(_ file: String, line: Int) -> SourceLocation {
        SourceLocation(fileID: file.contains("/") ? file : "mla-tp/" + file, filePath: MPIJob.repository + "/" + file,
                       line: line, column: 1)
    }

    /// Records an issue at the example's line for each command whose output departs from what
    /// the example shows; returns how many did.
    @discardableResult
    public static func check(_ example: DocExample, timeout: Double = 300) -> Int {
        guard let outputs = run(example, timeout: timeout, sourceLocation: location(example.file, line: example.line)) else { return 1 }
        var failures = 0
        for (command, output) in zip(example.commands, outputs) {
            guard let (want, got) = DocExamples.mismatch(expected: command.expected, actual: output.lines),
                  !DocExamples.matchesAcrossStreams(expected: command.expected, actual: output.lines) else { continue }
            failures += 1
            let line = want?.number ?? command.line
            let shown = want.map { "shows \"\($0.text)\"" } ?? "shows nothing more"
            let printed = got.map { "printed \"\($0)\"" } ?? "printed nothing more"
            Issue.record("""
                \(example.file):\(line): the example \(shown), but `\(command.text)` \(printed)\
                \(output.timedOut ? " (timed out)" : ""); its output (exit \(output.status)\(output.lines.count > 40 ? ", the first 40 lines" : "")):
                \(output.lines.prefix(40).joined(separator: "\n"))
                """, sourceLocation: location(example.file, line: line))
        }
        return failures
    }
}
