import Foundation
import Launch
import Measure

/// The sweep's progress: one line per job with its index, elapsed time and an estimate of what
/// is left (average job time so far × jobs left). Lines go to `emit`; on a terminal
/// (`rewrite`) each line is rewritten in place while its job runs.
public final class SweepProgress {
    public var total = 0
    var done = 0
    let start = Date()
    let rewrite: Bool
    let emit: (String) -> Void

    public init(rewrite: Bool, emit: @escaping (String) -> Void) {
        self.rewrite = rewrite
        self.emit = emit
    }

    func line(_ what: String, _ jobElapsed: Double) {
        let elapsed = Date().timeIntervalSince(start)
        let eta = done == 0 ? "eta —"
            : String(format: "eta ~%.0f s", max(0, (elapsed - jobElapsed) / Double(done) * Double(total - done) - jobElapsed))
        let text = String(format: "[%d/%d] %@ — elapsed %.1f s, %@", done + 1, total, what, elapsed, eta)
        emit(rewrite ? "\r\u{1B}[K" + text : text + "\n")
    }

    /// Runs one job, showing its line (refreshed once a second on a terminal).
    func run(_ what: String, _ body: (((Double) -> Void)?) -> ChildProcess.Result) -> ChildProcess.Result {
        line(what, 0)
        let r = body(rewrite ? { [self] t in line(what, t) } : nil)
        done += 1
        if rewrite { emit("\r\u{1B}[K" + String(format: "[%d/%d] %@ — done in %.1f s\n", done, total, what, r.seconds)) }
        return r
    }

    /// Waits until the 1-minute load average drops below `limit` (no wait when nil), showing it.
    func waitForIdle(_ limit: Double?, maxWait: Int) {
        guard let limit else { return }
        let begin = Date()
        while let load = loadAverage(), load >= limit, Date().timeIntervalSince(begin) < Double(maxWait) {
            emit(String(format: "%@waiting for the load average to drop below %.2f (now %.2f, waited %.0f s)%@",
                        rewrite ? "\r\u{1B}[K" : "", limit, load, Date().timeIntervalSince(begin), rewrite ? "" : "\n"))
            // Never past --max-wait: a 1 s limit waits 1 s, not a whole polling step.
            let left = Double(maxWait) - Date().timeIntervalSince(begin)
            if left > 0 { Thread.sleep(forTimeInterval: min(rewrite ? 2 : 10, left)) }
        }
    }

    func finish(what: String = "sweep") {
        emit(String(format: "%@: %d jobs in %.1f s\n", what, done, Date().timeIntervalSince(start)))
    }
}
