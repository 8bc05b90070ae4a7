import Foundation
import Testing
import TestSupport

/// The failure contract every refused input is held to (docs/reliability.md): the documented
/// exit code, exactly one `mla-tp: rank` line with its " — " hint, no backtrace, every rank gone
/// within 10 s, and the watched directories exactly as they were (no output written or changed,
/// no temporary file left behind).
enum FailureContract {
    /// A directory's files and their bytes (one level, symlinks and special files by kind).
    static func snapshot(_ dir: URL) throws -> [String: Data] {
        var files: [String: Data] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: dir.path) {
            let path = dir.appendingPathComponent(name).path
            let type = try FileManager.default.attributesOfItem(atPath: path)[.type] as? FileAttributeType
            files[name] = type == .typeRegular ? try Data(contentsOf: URL(fileURLWithPath: path)) : Data("\(type.map { "\($0)" } ?? "?")".utf8)
        }
        return files
    }

    /// Runs `args` under `mpirun -n ranks` (a plain process when `ranks` is nil) and checks the contract.
    @discardableResult
    static func expect(_ args: [String], ranks: Int? = 2, code: Int32, mentions needles: [String], watching dirs: [URL],
                       environment: [String: String] = [:], sourceLocation: SourceLocation = #_sourceLocation) throws -> MPIJob.Result {
        let before = try dirs.map(snapshot)
        let r = ranks.map { MPIJob.run(ranks: $0, args, timeout: 30, environment: environment) } ?? MPIJob.single(args, timeout: 30)
        try check(r, code: code, mentions: needles, watching: dirs, before: before, sourceLocation: sourceLocation)
        return r
    }

    /// The contract for a job that already ran, `dirs` having been `before` when it started.
    static func check(_ r: MPIJob.Result, code: Int32, mentions needles: [String], watching dirs: [URL], before: [[String: Data]],
                      sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(r.status == code, "exit code: \(r)", sourceLocation: sourceLocation)
        #expect(!r.timedOut && r.seconds < 10, "all ranks gone within 10 s: \(r)", sourceLocation: sourceLocation)
        for needle in needles {
            #expect(r.stderr.contains(needle), "message should mention \(needle): \(r)", sourceLocation: sourceLocation)
        }
        let lines = r.stderr.split(separator: "\n").filter { $0.hasPrefix("mla-tp: rank") }
        #expect(lines.count == 1, "exactly one error line: \(r)", sourceLocation: sourceLocation)
        #expect(lines.first?.contains(" — ") == true, "what happened — what to do: \(r)", sourceLocation: sourceLocation)
        #expect(!r.stderr.contains("Fatal error") && !r.stderr.contains("Backtrace") && !r.stderr.contains("Process received signal"),
                "no trap, no backtrace: \(r)", sourceLocation: sourceLocation)
        #expect(try dirs.map(snapshot) == before, "nothing written, changed or left behind: \(r)", sourceLocation: sourceLocation)
    }
}
