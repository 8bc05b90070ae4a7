import Foundation

/// Test-only faults, switched on by environment variables, to prove that one failing rank
/// ends the whole job: `MLATP_FAULT=kill` (SIGKILL itself) or `MLATP_FAULT=stall` (sleep
/// forever) on rank `MLATP_FAULT_RANK` (default 1), in the middle of a forward.
enum FaultInjection {
    static func hook(rank: Int, environment: [String: String] = ProcessInfo.processInfo.environment) -> (() -> Void)? {
        guard let fault = environment["MLATP_FAULT"], rank == Int(environment["MLATP_FAULT_RANK"] ?? "1") else { return nil }
        switch fault {
        case "kill": return { kill(getpid(), SIGKILL) }
        case "stall": return { while true { sleep(60) } }
        default: return nil
        }
    }
}
