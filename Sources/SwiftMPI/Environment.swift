import CMPI

/// MPI's process-wide lifecycle: `initialize()` once at start, `finalize()` once at the end.
///
/// Works under `mpirun -n K` and as a plain single process (MPI singleton init, size 1).
public enum Environment {
    /// Initializes MPI (thread level FUNNELED: only the main thread calls MPI) and makes
    /// errors on the world communicator return codes instead of aborting, so each one
    /// becomes a typed `MPIError`. Returns the world communicator.
    public static func initialize() throws(MPIError) -> Communicator {
        var provided: Int32 = 0
        try check("MPI_Init_thread", MPI_Init_thread(nil, nil, Int32(MPI_THREAD_FUNNELED), &provided))
        let world = Communicator.world
        try check("MPI_Comm_set_errhandler", MPI_Comm_set_errhandler(world.raw, mlatp_errors_return()))
        return world
    }

    /// True between `initialize()` and `finalize()`.
    public static var isInitialized: Bool {
        var flag: Int32 = 0
        MPI_Initialized(&flag)
        var done: Int32 = 0
        MPI_Finalized(&done)
        return flag != 0 && done == 0
    }

    /// Finalizes MPI. Call only when every rank has left every collective; a rank that
    /// finalizes while others still wait in a collective makes the job hang.
    public static func finalize() throws(MPIError) {
        try check("MPI_Finalize", MPI_Finalize())
    }

    /// Seconds since an arbitrary origin, from `MPI_Wtime`.
    public static func wallTime() -> Double { MPI_Wtime() }
}
