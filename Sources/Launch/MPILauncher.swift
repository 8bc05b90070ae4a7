import Foundation

/// How mla-tp starts `mpirun` jobs: the one policy the CLI (sweep, plan's rate probe), the
/// tests and `launch/lib/common.sh` share.
///
/// - `-q`: our own one-line errors are the message;
/// - `--timeout`: a hung job always ends (Open MPI hangs forever when a rank dies in a collective);
/// - one BLAS and one OpenMP thread per rank (`-x OPENBLAS_NUM_THREADS=1 -x OMP_NUM_THREADS=1`);
/// - `--allow-run-as-root` as root;
/// - `--oversubscribe` only when ranks outnumber this machine's cores, and at most
///   ``maxRanks(cores:)`` ranks in all;
/// - on its backstop timeout, SIGTERM and ``stopGrace`` seconds before SIGKILL: mpirun killed
///   outright leaves its session folder (`ompi.HOST.UID/pid.PID`, up to 8 MB) and the job's
///   shared-memory segments behind, which it removes itself when it has the time.
public struct MPILauncher: Sendable {
    /// The program each rank runs.
    public var executable: String
    /// Cores of this machine (oversubscription starts above it).
    public var cores: Int
    /// Whether this process runs as root.
    public var isRoot: Bool

    public init(executable: String, cores: Int = ProcessInfo.processInfo.activeProcessorCount, isRoot: Bool = getuid() == 0) {
        self.executable = executable
        self.cores = cores
        self.isRoot = isRoot
    }

    /// This executable, as `/proc/self/exe` names it.
    public static var currentExecutable: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    /// The most ranks one job may start on `cores` cores: 4 per core, at least 16 (the same bound
    /// `mlatp_max_ranks` prints). Past it a job only thrashes: `-n 999` on 2 cores crashed in
    /// Open MPI's teardown.
    public static func maxRanks(cores: Int) -> Int { max(16, 4 * cores) }

    /// Seconds mpirun gets between SIGTERM and SIGKILL: time to stop its ranks and remove its
    /// session folder (under a second on an idle machine, several on a loaded one).
    public static let stopGrace = 15.0

    /// mpirun's flags for `ranks` ranks under this policy (the same list `mlatp_mpirun_flags` prints).
    public func flags(ranks: Int, timeout: Int) -> [String] {
        var f = ["-q", "-n", "\(ranks)", "--timeout", "\(timeout)", "-x", "OPENBLAS_NUM_THREADS=1", "-x", "OMP_NUM_THREADS=1"]
        if isRoot { f.append("--allow-run-as-root") }
        if ranks > cores { f.append("--oversubscribe") }
        return f
    }

    /// `mpirun <policy> <mpirunFlags> -x K… executable args…`. The job gets mpirun's own
    /// `--timeout` and this process's `timeout` plus 10 s as a backstop.
    public func run(ranks: Int, _ args: [String], timeout: Int, mpirunFlags: [String] = [],
                    environment: [String: String] = [:], onTick: ((Double) -> Void)? = nil) -> ChildProcess.Result {
        var argv = flags(ranks: ranks, timeout: timeout) + mpirunFlags
        for key in environment.keys.sorted() { argv += ["-x", key] }
        var env = environment
        env["SWIFT_BACKTRACE"] = "enable=no"
        if isRoot {
            env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
            env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
        }
        return ChildProcess.run("/usr/bin/env", ["mpirun"] + argv + [executable] + args, environment: env,
                                timeout: Double(timeout) + 10, grace: Self.stopGrace, onTick: onTick)
    }

    /// `executable args…` as a plain process (an MPI singleton when it starts MPI).
    public func single(_ args: [String], timeout: Int, environment: [String: String] = [:]) -> ChildProcess.Result {
        var env = environment
        env["SWIFT_BACKTRACE"] = "enable=no"
        return ChildProcess.run(executable, args, environment: env, timeout: Double(timeout))
    }
}
