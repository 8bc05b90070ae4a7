import Foundation
import SafeTensors

/// Test-only faults, switched on by environment variables, to prove that one failing rank
/// ends the whole job: `MLATP_FAULT=kill` (SIGKILL itself), `MLATP_FAULT=stall` (sleep
/// forever) or `MLATP_FAULT=error` (throw an input error that only this rank sees) on rank
/// `MLATP_FAULT_RANK` (default 1), in the middle of a forward or of a rate probe; or `MLATP_FAULT=hold-output`:
/// that rank, its output written, waits before linking it in until a termination notice
/// arrives (at most 30 s), so that the tests can signal mpirun at exactly that moment; or
/// `MLATP_FAULT=hold-load` (`holdLoad`).
enum FaultInjection {
    /// Installs `hold-output` for this process when it is switched on for `rank`.
    static func installOutputHold(rank: Int, environment: [String: String] = ProcessInfo.processInfo.environment) {
        guard environment["MLATP_FAULT"] == "hold-output", targets(rank, environment) else { return }
        AtomicFile.beforeCommit = {
            let deadline = Date().addingTimeInterval(30)
            while TerminationNotice.received == nil && Date() < deadline { usleep(10_000) }
        }
    }

    /// Whether the fault is switched on for `rank`: `MLATP_FAULT_RANK` (default 1), or `all`.
    static func targets(_ rank: Int, _ environment: [String: String]) -> Bool {
        let which = environment["MLATP_FAULT_RANK"] ?? "1"
        return which == "all" || rank == Int(which)
    }

    /// `MLATP_FAULT=hold-load`: once the checkpoint file `path` is open, wait (at most 30 s) until
    /// its size changes, so that the tests can shrink it between the header and the tensors.
    static func holdLoad(_ path: String, rank: Int, environment: [String: String] = ProcessInfo.processInfo.environment) {
        guard environment["MLATP_FAULT"] == "hold-load", targets(rank, environment) else { return }
        func size() -> UInt64? { (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? UInt64 }
        let start = size(), deadline = Date().addingTimeInterval(30)
        while size() == start && Date() < deadline { usleep(10_000) }
    }

    static func hook(rank: Int, environment: [String: String] = ProcessInfo.processInfo.environment) -> (() throws -> Void)? {
        guard let fault = environment["MLATP_FAULT"], targets(rank, environment) else { return nil }
        switch fault {
        case "kill": return { kill(getpid(), SIGKILL) }
        case "stall": return { while true { sleep(60) } }
        case "error":
            return { throw CLIError.input("injected fault: rank \(rank) failed alone mid-job — unset MLATP_FAULT") }
        default: return nil
        }
    }
}
