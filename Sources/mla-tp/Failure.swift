import ExitClass
import Foundation
import SafeTensors
import SwiftMPI

/// The one failure policy. Every error ends the whole job promptly with one line,
/// `mla-tp: rank R: <what happened> — <what to do>`, and an exit code for its class:
///
/// | code | class                                  |
/// |------|----------------------------------------|
/// | 2    | usage (bad flags)                      |
/// | 3    | config / validation (incl. the gate mismatch) |
/// | 4    | input or checkpoint                    |
/// | 5    | numeric (NaN/Inf)                      |
/// | 70   | internal (MPI or a bug)                |
///
/// Errors every rank detects identically (validation, usage) are printed once, by rank 0.
/// A rank that fails alone prints its line and calls `MPI_Abort`, which ends every rank.
enum Failure {
    typealias Code = FailureClass

    /// The world communicator once MPI is up (set by `Runtime.start`).
    nonisolated(unsafe) static var world: Communicator?

    /// This process's rank as mpirun announced it, known before MPI_Init (0 when no launcher
    /// started this process, whatever a stale variable says).
    static var launchRank: Int {
        let env = ProcessInfo.processInfo.environment
        guard underLauncher else { return 0 }
        return Int(env["OMPI_COMM_WORLD_RANK"] ?? env["PMI_RANK"] ?? "0") ?? 0
    }

    /// Whether an MPI launcher (mpirun, orted) started this process. An Open MPI rank variable
    /// counts only with its job's session directory present: one left in a shell's environment
    /// after its job ended (or copied by hand) would otherwise make rank "1" swallow every usage
    /// error and exit 0.
    static var underLauncher: Bool {
        let env = ProcessInfo.processInfo.environment
        if env["OMPI_COMM_WORLD_RANK"] != nil {
            guard let session = env["PMIX_SERVER_TMPDIR"] ?? env["OMPI_MCA_orte_jobfam_session_dir"] else { return false }
            return access(session, F_OK) == 0
        }
        return env["PMI_RANK"] != nil
    }

    /// A usage error (raised before MPI starts, the same on every rank): rank 0 prints it and
    /// ends with code 2, the job's exit code. The other ranks end with 0 and print nothing: had
    /// they ended with 2, mpirun could kill rank 0 before its line got out (seen with 4 ranks on
    /// 2 cores); a rank that ends with 0 before MPI_Init never stops the job. A message without
    /// its own "— what to do" gets the help pointer as that half.
    static func usage(_ message: String) -> Never {
        guard launchRank == 0 else { exitQuietly(0) }
        let text = message.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }.joined(separator: " ")
        RankOutput.write("mla-tp: rank 0: \(OutsideText.escaped(text))\(text.contains(" — ") ? "" : " — see `mla-tp --help`")\n", fd: 2)
        exitQuietly(Code.usage.rawValue)
    }

    /// Classifies `error`: its exit code, its message, and whether every rank sees it identically.
    /// Each error states its own class (`ExitClassified`, beside its definition); any other
    /// error is a bug.
    /// The message is one line whatever it holds: every control character in it (from a path, a
    /// checkpoint's string, a child's output) is shown escaped (`OutsideText`).
    static func classify(_ error: Error) -> (Code, String, everyRank: Bool) {
        guard let e = error as? any ExitClassified else {
            return (.internal, OutsideText.escaped("\(error)") + " — this is a bug in mla-tp; please report it with the command you ran", false)
        }
        return (e.failureClass, OutsideText.escaped(e.description), e.seenByEveryRank)
    }

    /// Prints the error's one line (once for errors every rank sees) and ends the job.
    static func fail(_ error: Error) -> Never {
        let (code, message, everyRank) = classify(error)
        let rank = world?.rank ?? launchRank
        if !everyRank || rank == 0 {
            RankOutput.write("mla-tp: rank \(rank): \(message)\n", fd: 2)
        }
        if case SafeTensorsWriteError.interrupted = error {
            // The launcher is already ending the job (it sent the signal): end this rank the way
            // its SIGTERM is about to, rather than race its teardown with MPI_Abort.
            _ = raise(SIGTERM)
        }
        // Before MPI starts, an error every rank sees ends the other ranks as a usage error does:
        // with 0, so that mpirun never kills rank 0 before its line is out.
        if world == nil, everyRank, rank != 0 { exitQuietly(0) }
        guard let comm = world, comm.size > 1 else { exitQuietly(code.rawValue) }
        // When every rank is here with the same error, all of them reach this barrier at once:
        // finish MPI cleanly and exit with no abort banner, rank 0 with the class code (mpirun's
        // exit code) and the others with 0, so that mpirun never kills rank 0 while its output is
        // still on its way (under load an early non-zero exit elsewhere sometimes cut rank 0's
        // last lines). If the others do not arrive (the error was this rank's alone, or they are
        // inside a collective), abort the job so nobody waits forever.
        if everyRank, (try? comm.barrier(timeout: 3)) == true { exitQuietly(rank == 0 ? code.rawValue : 0) }
        if everyRank && rank != 0 {
            // Rank 0 printed the message; let its line out before the abort ends every rank.
            RankOutput.write("mla-tp: rank \(rank): \(message)\n", fd: 2)
        }
        comm.abort(code: code.rawValue)
    }

    /// Finalizes MPI if it is running, then exits with `code`.
    static func exitQuietly(_ code: Int32) -> Never {
        if Environment.isInitialized { try? Environment.finalize() }
        exit(code)
    }
}

/// An error raised by the command line itself, with its class.
struct CLIError: ExitClassified {
    var code: Failure.Code
    var message: String
    var everyRank: Bool = true
    var description: String { message }
    var failureClass: FailureClass { code }
    var seenByEveryRank: Bool { everyRank }

    static func usage(_ m: String) -> CLIError { CLIError(code: .usage, message: m) }
    static func input(_ m: String, everyRank: Bool = true) -> CLIError { CLIError(code: .input, message: m, everyRank: everyRank) }
    static func config(_ m: String) -> CLIError { CLIError(code: .config, message: m) }
}

/// Output before MPI starts (help text), without the MPI layer's rank.
enum RankOutputShim {
    static func out(_ text: String) { RankOutput(rank: 0).printRoot(text, terminator: text.hasSuffix("\n") ? "" : "\n") }
}
