import ExitClass
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The limits the kernel libraries start under, checked before either is asked for anything.
///
/// OpenBLAS and oneDNN's OpenMP runtime read their thread counts from the environment and their
/// memory from the process's address-space limit, and neither fails cleanly outside what it can
/// do: `OMP_NUM_THREADS=100000` ends in a SIGSEGV inside OpenMP's first parallel region, and
/// under `ulimit -v 200000` OpenBLAS's allocator spins at 100% CPU retrying its buffer forever.
/// ``check(environment:cores:addressSpaceBytes:)`` refuses both, one line naming the limit.
public enum KernelLimits {
    /// The environment variables that set a kernel library's threads.
    public static let threadVariables = ["OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"]

    /// The most threads one process may ask a kernel library for on a host with `cores` cores.
    public static func maxThreads(cores: Int) -> Int { max(16, 4 * cores) }

    /// The smallest address-space limit (`ulimit -v`) the libraries start under: OpenBLAS reserves
    /// its buffers, Open MPI its shared-memory segments and the runtime its threads' stacks.
    public static let minAddressSpaceBytes = 1 << 30

    /// Refuses a thread count that is not a positive integer (or an OpenMP list of them) up to
    /// ``maxThreads(cores:)``, and an address-space limit below ``minAddressSpaceBytes``.
    public static func check(environment: [String: String] = ProcessInfo.processInfo.environment,
                             cores: Int = ProcessInfo.processInfo.activeProcessorCount,
                             addressSpaceBytes: Int? = currentAddressSpaceLimit()) throws(KernelLimitError) {
        let most = maxThreads(cores: cores)
        for name in threadVariables {
            guard let value = environment[name] else { continue }
            let counts = value.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !counts.isEmpty, counts.allSatisfy({ ($0 ?? 0) >= 1 && ($0 ?? 0) <= most }) else {
                throw .threads(variable: name, value: value, most: most, cores: cores)
            }
        }
        if let limit = addressSpaceBytes, limit < minAddressSpaceBytes {
            throw .addressSpace(bytes: limit, minimum: minAddressSpaceBytes)
        }
    }

    /// `RLIMIT_AS` in bytes, nil when unlimited.
    public static func currentAddressSpaceLimit() -> Int? {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_AS.rawValue), &limit) == 0, limit.rlim_cur != rlim_t.max else { return nil }
        return limit.rlim_cur > rlim_t(Int.max) ? nil : Int(limit.rlim_cur)
    }
}

/// A limit of the environment the kernel libraries cannot run under.
public enum KernelLimitError: ExitClassified, Equatable, Sendable {
    case threads(variable: String, value: String, most: Int, cores: Int)
    case addressSpace(bytes: Int, minimum: Int)

    public var description: String {
        switch self {
        case let .threads(variable, value, most, cores):
            return "\(variable)=\(value) is not a thread count from 1 to \(most) (4 per core, \(cores) cores here) — "
                + "unset \(variable) (mla-tp runs one thread per rank) or set it to at most \(most)"
        case let .addressSpace(bytes, minimum):
            return "the address-space limit (ulimit -v) is \(bytes >> 10) KiB, below the \(minimum >> 20) MiB that OpenBLAS, "
                + "Open MPI and oneDNN reserve when they start — raise it (ulimit -v \(minimum >> 10) or more), or lift it (ulimit -v unlimited)"
        }
    }

    public var failureClass: FailureClass { .config }
}
