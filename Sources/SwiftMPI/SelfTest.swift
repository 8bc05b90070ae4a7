import CMPI

/// Deliberate MPI failures, to prove that each becomes a typed `MPIError` carrying the
/// library's own message (used by `mla-tp diagnose` and its tests; MPI must be initialized).
public enum SelfTest {
    /// A broadcast from a root that does not exist: must throw `MPIError` of class `MPI_ERR_ROOT`.
    public static func invalidRoot(_ comm: Communicator) -> MPIError? {
        var values: [Float] = [1, 2, 3]
        do { try comm.broadcast(&values, root: comm.size + 5) } catch { return error }
        return nil
    }

    /// An allreduce with a negative count: must throw `MPIError` of class `MPI_ERR_COUNT`.
    public static func negativeCount(_ comm: Communicator) -> MPIError? {
        var value: Float = 0
        do { try check("MPI_Allreduce", MPI_Allreduce(mlatp_in_place(), &value, -1, mlatp_float(), mlatp_op_sum(), comm.rawValue)) }
        catch { return error }
        return nil
    }
}
