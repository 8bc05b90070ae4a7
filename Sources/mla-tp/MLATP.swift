import ArgumentParser
import BuildInfo
import SafeTensors
import TensorCore

/// `mla-tp`: DeepSeek-V3 MLA attention with a gated output under tensor parallelism,
/// one MPI rank per shard (`mpirun -n 4 mla-tp`).
@main
struct MLATP: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mla-tp",
        abstract: "Run DeepSeek-V3 MLA attention with a gated output under tensor parallelism (one MPI rank per shard).",
        discussion: """
            Run under mpirun, one rank per shard: `mpirun -n 4 mla-tp` runs the tiny preset with the \
            column-parallel gate and checks the result against the unsharded forward.
            """,
        version: "mla-tp tree \(BuildInfo.treeID)",
        subcommands: [Run.self, Init.self, Linear.self, Diagnose.self, Plan.self, Sweep.self, SweepStep.self, Job.self, Bench.self, Invariance.self],
        defaultSubcommand: Run.self)

    /// Parses, runs, and routes every error through the one failure policy (`Failure`).
    static func main() {
        TerminationNotice.install(launcher: Failure.underLauncher)
        FaultInjection.installOutputHold(rank: Failure.launchRank)
        do {
            var command = try parseAsRoot()
            try KernelLimits.check()        // before OpenBLAS or OpenMP is asked for anything
            try command.run()
        } catch {
            guard isParserError(error) else { Failure.fail(error) }
            if exitCode(for: error) == .success {      // --help, --version
                if Failure.launchRank == 0 { RankOutputShim.out(fullMessage(for: error)) }
                Failure.exitQuietly(0)
            }
            Failure.usage(message(for: error))
        }
    }

    /// Errors that come from argument parsing (bad flags, help requests, `validate()`).
    static func isParserError(_ error: Error) -> Bool {
        error is ValidationError || error is CleanExit || error is ExitCode
            || String(reflecting: type(of: error)).hasPrefix("ArgumentParser.")
    }
}
