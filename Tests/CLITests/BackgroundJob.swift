import Foundation
import TestSupport

/// A job running on a background thread while the test watches and signals its processes.
final class BackgroundJob: @unchecked Sendable {
    private var result: MPIJob.Result?
    private let done = DispatchSemaphore(value: 0)

    init(_ body: @escaping @Sendable () -> MPIJob.Result) {
        DispatchQueue.global().async {
            // A dispatch thread blocks most signals, and a spawned child inherits that mask: mpirun
            // would then never see the SIGTERM the test sends it. Unblock them for the spawn.
            var all = sigset_t(), previous = sigset_t()
            sigfillset(&all)
            pthread_sigmask(SIG_UNBLOCK, &all, &previous)
            self.result = body()
            pthread_sigmask(SIG_SETMASK, &previous, nil)
            self.done.signal()
        }
    }

    /// The job's result, once it has ended.
    func wait() -> MPIJob.Result {
        done.wait()
        return result!
    }
}

/// The processes of this machine, as /proc shows them.
enum Processes {
    /// Pids whose command line contains every one of `needles`.
    static func matching(_ needles: [String]) -> [Int32] {
        let all = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return all.compactMap(Int32.init).filter { pid in
            guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
            let cmd = String(decoding: data, as: UTF8.self).replacingOccurrences(of: "\0", with: " ")
            return needles.allSatisfy { cmd.contains($0) }
        }
    }

    /// What each open file descriptor of `pid` points at.
    static func openFiles(_ pid: Int32) -> [String] {
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []
        return fds.compactMap { try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\($0)") }
    }

    /// Polls (every 10 ms, up to 20 s) until one of `pids()` has a file open for which `test`
    /// holds; returns that pid, or nil.
    static func first(of pids: () -> [Int32], holding test: (String) -> Bool) -> Int32? {
        for _ in 0..<2000 {
            if let pid = pids().first(where: { openFiles($0).contains(where: test) }) { return pid }
            usleep(10_000)
        }
        return nil
    }
}
