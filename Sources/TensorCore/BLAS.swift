import CBLAS
import Foundation

/// OpenBLAS process settings.
public enum BLAS {
    /// One BLAS thread per rank unless `OPENBLAS_NUM_THREADS` says otherwise, and one OpenMP
    /// thread for oneDNN unless `OMP_NUM_THREADS` does: with one MPI rank per core, more threads
    /// only oversubscribe the cores.
    public static func defaultToOneThreadPerRank() {
        if ProcessInfo.processInfo.environment["OPENBLAS_NUM_THREADS"] == nil { openblas_set_num_threads(1) }
        OneDNN.defaultToOneThreadPerRank()
    }

    /// Sets OpenBLAS's thread count.
    public static func setThreads(_ n: Int) { openblas_set_num_threads(Int32(n)) }

    /// OpenBLAS's thread count now.
    public static var threads: Int { Int(openblas_get_num_threads()) }
}
