import Foundation

/// Test-only faults, switched on by environment variables, to prove that one failing rank
/// ends the whole job: `MLATP_FAULT=kill` (SIGKILL itself), `MLATP_FAULT=stall` (sleep
/// forever) or `MLATP_FAULT=error` (throw an input error that only this rank sees) on rank
/// `MLATP_FAULT_RANK` (default 1), in the middle of a forward.
enum FaultInjection {
    static func hook(rank: Int, environment: [String: String] = ProcessInfo.processInfo.environment) -> (() throws -> Void)? {
        guard let fault = environment["MLATP_FAULT"], rank == Int(environment["MLATP_FAULT_RANK"] ?? "1") else { return nil }
        switch fault {
        case "kill": return { kill(getpid(), SIGKILL) }
        case "stall": return { while true { sleep(60) } }
        case "error":
            return { throw CLIError.input("injected fault: rank \(rank) failed alone mid-forward — unset MLATP_FAULT") }
        default: return nil
        }
    }
}
