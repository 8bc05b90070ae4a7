import Foundation

/// Runs the built `mla-tp` under a real `mpirun -n K`, for tests that prove behaviour across
/// processes. Both pipes are drained on background threads; a job that outlives its time
/// limit is killed, and the result says how long it took.
public struct MPIJob {
    public struct Result: CustomStringConvertible {
        public var status: Int32
        public var stdout: String
        public var stderr: String
        public var seconds: Double
        public var timedOut: Bool
        public var description: String {
            "status \(status) after \(String(format: "%.2f", seconds)) s\(timedOut ? " (timed out)" : "")\n--- stdout\n\(stdout)\n--- stderr\n\(stderr)"
        }
    }

    /// The `mla-tp` binary: `$MLATP_BIN`, else beside the test bundle in the build directory.
    public static var binary: String {
        if let path = ProcessInfo.processInfo.environment["MLATP_BIN"], FileManager.default.isExecutableFile(atPath: path) {
            return path
        }
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = dir.appendingPathComponent("mla-tp").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        return ".build/release/mla-tp"
    }

    /// `mpirun -n ranks mla-tp args…` with this machine's flags; `timeout` bounds the whole job.
    public static func run(ranks: Int, _ args: [String], timeout: Double = 60, environment: [String: String] = [:],
                           mpirunFlags: [String] = []) -> Result {
        var argv = ["-q", "-n", "\(ranks)", "--allow-run-as-root", "--oversubscribe", "-x", "OPENBLAS_NUM_THREADS=1",
                    "--timeout", "\(Int(timeout.rounded(.up)))"]
        argv += mpirunFlags
        for (k, _) in environment { argv += ["-x", k] }
        argv += [binary] + args
        return spawn("/usr/bin/env", ["mpirun"] + argv, timeout: timeout, environment: environment)
    }

    /// `mla-tp args…` as a plain process (MPI singleton).
    public static func single(_ args: [String], timeout: Double = 60) -> Result {
        spawn(binary, args, timeout: timeout, environment: [:])
    }

    /// A launch script (e.g. `launch/two-hosts`) with its arguments. Past `timeout` it gets
    /// `stopSignal` and `grace` seconds to clean up before `SIGKILL`.
    public static func script(_ path: String, _ args: [String], timeout: Double, grace: Double = 30,
                              stopSignal: Int32 = SIGTERM, environment: [String: String] = [:]) -> Result {
        spawn(path, args, timeout: timeout, environment: environment, grace: grace, stopSignal: stopSignal)
    }

    static func spawn(_ executable: String, _ args: [String], timeout: Double, environment: [String: String],
                      grace: Double = 0.5, stopSignal: Int32 = SIGTERM) -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = args
        var env = ProcessInfo.processInfo.environment
        env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
        env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
        env["SWIFT_BACKTRACE"] = "enable=no"
        for (k, v) in environment { env[k] = v }
        process.environment = env
        let outPipe = Pipe(), errPipe = Pipe()
        process.standardOutput = outPipe
        process.standardError = errPipe
        process.standardInput = FileHandle.nullDevice
        let outData = DataBox(), errData = DataBox()
        let group = DispatchGroup()
        for (pipe, box) in [(outPipe, outData), (errPipe, errData)] {
            group.enter()
            DispatchQueue.global().async {
                box.data = pipe.fileHandleForReading.readDataToEndOfFile()
                group.leave()
            }
        }
        let start = Date()
        // Test threads may block signals, and a child inherits that mask: spawn with none
        // blocked, so that a script's traps (SIGTERM, SIGINT) work as from a shell.
        var none = sigset_t(), saved = sigset_t()
        sigemptyset(&none)
        pthread_sigmask(SIG_SETMASK, &none, &saved)
        defer { pthread_sigmask(SIG_SETMASK, &saved, nil) }
        do { try process.run() } catch {
            return Result(status: -1, stdout: "", stderr: "could not start \(executable): \(error)", seconds: 0, timedOut: false)
        }
        var timedOut = false
        while process.isRunning {
            if Date().timeIntervalSince(start) > timeout {
                timedOut = true
                kill(process.processIdentifier, stopSignal)
                let stopped = Date()
                while process.isRunning && Date().timeIntervalSince(stopped) < grace { usleep(20_000) }
                if process.isRunning { kill(process.processIdentifier, SIGKILL) }
                break
            }
            usleep(20_000)
        }
        process.waitUntilExit()
        let seconds = Date().timeIntervalSince(start)
        _ = group.wait(timeout: .now() + 5)
        return Result(status: process.terminationStatus, stdout: String(decoding: outData.data, as: UTF8.self),
                      stderr: String(decoding: errData.data, as: UTF8.self), seconds: seconds, timedOut: timedOut)
    }
}

final class DataBox: @unchecked Sendable { var data = Data() }

/// Approximate equality with a stated tolerance: |a − b| ≤ atol + rtol·|b|.
public func isClose(_ a: Float, _ b: Float, rtol: Float = 1e-5, atol: Float = 1e-6) -> Bool {
    abs(a - b) <= atol + rtol * abs(b)
}

/// True when every pair is close.
public func allClose(_ a: [Float], _ b: [Float], rtol: Float = 1e-5, atol: Float = 1e-6) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { isClose($0, $1, rtol: rtol, atol: atol) }
}
