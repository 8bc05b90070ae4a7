import Foundation

/// A child process run to completion with both pipes drained on background threads, so a
/// child that writes more than a pipe holds never blocks. A child that outlives `timeout`
/// gets SIGTERM, then SIGKILL half a second later; the result says so.
public enum ChildProcess {
    public struct Result: CustomStringConvertible, Sendable {
        public var status: Int32
        public var stdout: String
        public var stderr: String
        public var seconds: Double
        public var timedOut: Bool

        public init(status: Int32, stdout: String, stderr: String, seconds: Double, timedOut: Bool) {
            self.status = status
            self.stdout = stdout
            self.stderr = stderr
            self.seconds = seconds
            self.timedOut = timedOut
        }

        public var description: String {
            "status \(status) after \(String(format: "%.2f", seconds)) s\(timedOut ? " (timed out)" : "")\n--- stdout\n\(stdout)\n--- stderr\n\(stderr)"
        }

        /// The last non-empty line the child printed (stderr first), for one-line error messages.
        public var lastLine: String {
            func last(_ text: String) -> String? {
                text.split(separator: "\n").last { !$0.trimmingCharacters(in: .whitespaces).isEmpty }.map(String.init)
            }
            return last(stderr) ?? last(stdout) ?? "no output"
        }
    }

    /// Runs `executable args…` with this process's environment plus `environment`; `onTick` is
    /// called about once a second with the seconds elapsed while the child runs. Past `timeout`
    /// the child gets `stopSignal`, and `grace` seconds to clean up before SIGKILL.
    public static func run(_ executable: String, _ args: [String], environment: [String: String] = [:],
                           timeout: Double, grace: Double = 0.5, stopSignal: Int32 = SIGTERM,
                           onTick: ((Double) -> Void)? = nil) -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = args
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        process.environment = env
        let outPipe = Pipe(), errPipe = Pipe()
        process.standardOutput = outPipe
        process.standardError = errPipe
        process.standardInput = FileHandle.nullDevice
        let out = Drained(), err = Drained()
        let group = DispatchGroup()
        for (pipe, box) in [(outPipe, out), (errPipe, err)] {
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
        var timedOut = false, lastTick = 0.0
        while process.isRunning {
            usleep(20_000)
            let t = Date().timeIntervalSince(start)
            if t > timeout {
                timedOut = true
                kill(process.processIdentifier, stopSignal)
                let stopped = Date()
                while process.isRunning && Date().timeIntervalSince(stopped) < grace { usleep(20_000) }
                if process.isRunning { kill(process.processIdentifier, SIGKILL) }
                break
            }
            if let onTick, t - lastTick >= 1 { onTick(t); lastTick = t }
        }
        process.waitUntilExit()
        let seconds = Date().timeIntervalSince(start)
        // A grandchild that keeps the pipes open must not hold us forever.
        _ = group.wait(timeout: .now() + 5)
        return Result(status: process.terminationStatus, stdout: String(decoding: out.data, as: UTF8.self),
                      stderr: String(decoding: err.data, as: UTF8.self), seconds: seconds, timedOut: timedOut)
    }

    final class Drained: @unchecked Sendable { var data = Data() }
}
