#if canImport(Glibc)
import Glibc
#endif
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

    /// `calls` back-to-back `SharedMemoryReducer` sums of varying lengths (0 … 4096 floats, ranks
    /// arriving at different times) whose exact totals are known: the number of wrong elements
    /// (0 expected), or nil when the reducer is not used on this machine (ranks on several hosts,
    /// or more ranks than CPUs).
    public static func sharedMemorySums(_ comm: Communicator, calls: Int = 300) throws(MPIError) -> Int? {
        let capacity = 4096, lengths = [0, 1, 7, capacity, 1000, capacity - 1]
        guard let reducer = try SharedMemoryReducer.make(comm, capacity: capacity) else { return nil }
        let p = comm.size, r = comm.rank
        var buffer = [Float](repeating: 0, count: capacity), wrong = 0
        for call in 0..<calls {
            let n = lengths[call % lengths.count], quarter = Float(call % 4) * 0.25
            for j in 0..<n { buffer[j] = Float((r + 1) * (j % 13 + 1)) + quarter }
            if call % 7 == r { usleep(300) }                               // ranks arrive out of step
            buffer.withUnsafeMutableBufferPointer { b in reducer.sum(UnsafeMutableBufferPointer(rebasing: b[0 ..< n])) }
            for j in 0..<n where buffer[j] != Float(p * (p + 1) / 2 * (j % 13 + 1)) + Float(p) * quarter { wrong += 1 }
        }
        try reducer.free()
        return wrong
    }
}
