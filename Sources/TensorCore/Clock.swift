#if canImport(Glibc)
import Glibc
#endif

/// The clocks the forward and the measurements read.
///
/// `now()` is `CLOCK_MONOTONIC`: one clock for every process on a host, so segments recorded by
/// different ranks line up on one timeline (MPI_Wtime counts from each process's own start in
/// Open MPI, so its readings cannot be compared across ranks).
public enum Clock {
    /// Seconds on `CLOCK_MONOTONIC`.
    @inline(__always)
    public static func now() -> Double { read(CLOCK_MONOTONIC) }

    /// CPU seconds the calling thread has used (`CLOCK_THREAD_CPUTIME_ID`). Below the wall time
    /// of the same work when the core was lent to other work.
    public static func threadCPU() -> Double { read(CLOCK_THREAD_CPUTIME_ID) }

    /// Seconds `body` took on `now()`.
    public static func seconds(_ body: () throws -> Void) rethrows -> Double {
        let start = now()
        try body()
        return now() - start
    }

    @inline(__always)
    static func read(_ id: clockid_t) -> Double {
        var ts = timespec()
        clock_gettime(id, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }
}
