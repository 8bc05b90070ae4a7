#if canImport(Glibc)
import Glibc
#endif
import CMPI

/// A typed handle to an MPI communicator (in the manner of swift-system's `FileDescriptor`).
///
/// Collectives are in place where MPI allows it and take Swift buffers; element counts above
/// `Int32.max` are sent in chunks. Every call is checked and throws `MPIError`.
public struct Communicator: RawRepresentable, @unchecked Sendable {
    public let rawValue: MPI_Comm

    public init(rawValue: MPI_Comm) { self.rawValue = rawValue }

    var raw: MPI_Comm { rawValue }

    /// `MPI_COMM_WORLD`.
    public static var world: Communicator { Communicator(rawValue: mlatp_comm_world()) }

    /// This process's rank in the communicator, 0 ..< size.
    public var rank: Int {
        var r: Int32 = 0
        MPI_Comm_rank(raw, &r)
        return Int(r)
    }

    /// The number of ranks.
    public var size: Int {
        var s: Int32 = 0
        MPI_Comm_size(raw, &s)
        return Int(s)
    }

    /// True on rank 0.
    public var isRoot: Bool { rank == 0 }

    /// Blocks until every rank has entered.
    public func barrier() throws(MPIError) {
        try check("MPI_Barrier", MPI_Barrier(raw))
    }

    /// A barrier that gives up after `timeout` seconds: true when every rank entered it in time.
    /// Used by the failure policy to tell "every rank hit the same error" (all arrive: exit
    /// cleanly) from "one rank failed alone" (the others never arrive: abort the job).
    public func barrier(timeout: Double) throws(MPIError) -> Bool {
        var request: MPI_Request? = nil
        try check("MPI_Ibarrier", MPI_Ibarrier(raw, &request))
        let deadline = MPI_Wtime() + timeout
        var done: Int32 = 0
        while true {
            try check("MPI_Test", MPI_Test(&request, &done, mlatp_status_ignore()))
            if done != 0 { return true }
            if MPI_Wtime() > deadline { return false }
            usleep(1_000)
        }
    }

    /// Reduces `buffer` element-wise across all ranks, leaving the result in `buffer` on every rank.
    public func allReduce<T: MPIScalar>(_ buffer: UnsafeMutableBufferPointer<T>, _ op: ReduceOp = .sum) throws(MPIError) {
        guard let base = buffer.baseAddress else { return try allReduceEmpty(T.self, op) }
        for (offset, length) in chunks(count: buffer.count) {
            try check("MPI_Allreduce", MPI_Allreduce(
                mlatp_in_place(), base + offset, Int32(length), T.mpiDatatype, op.raw, raw))
        }
    }

    /// Array convenience for `allReduce(_:_:)`.
    public func allReduce<T: MPIScalar>(_ array: inout [T], _ op: ReduceOp = .sum) throws(MPIError) {
        let comm = self
        try array.withUnsafeMutableBufferPointer { (buffer) throws(MPIError) in try comm.allReduce(buffer, op) }
    }

    /// A zero-length allreduce still enters the collective, so ranks stay in step.
    private func allReduceEmpty<T: MPIScalar>(_: T.Type, _ op: ReduceOp) throws(MPIError) {
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: 16, alignment: 16)
        defer { scratch.deallocate() }
        try check("MPI_Allreduce", MPI_Allreduce(mlatp_in_place(), scratch, 0, T.mpiDatatype, op.raw, raw))
    }

    /// Sends `buffer` from `root` to every rank (in place).
    public func broadcast<T: MPIScalar>(_ buffer: UnsafeMutableBufferPointer<T>, root: Int = 0) throws(MPIError) {
        guard let base = buffer.baseAddress else { return }
        for (offset, length) in chunks(count: buffer.count) {
            try check("MPI_Bcast", MPI_Bcast(base + offset, Int32(length), T.mpiDatatype, Int32(root), raw))
        }
    }

    /// Array convenience for `broadcast(_:root:)`.
    public func broadcast<T: MPIScalar>(_ array: inout [T], root: Int = 0) throws(MPIError) {
        let comm = self
        try array.withUnsafeMutableBufferPointer { (buffer) throws(MPIError) in try comm.broadcast(buffer, root: root) }
    }

    /// Gathers each rank's `send` (the same count on every rank) into `receive`, rank-major:
    /// `receive[r * send.count ..< (r + 1) * send.count]` holds rank r's values.
    public func allGather<T: MPIScalar>(
        _ send: UnsafeBufferPointer<T>, into receive: UnsafeMutableBufferPointer<T>
    ) throws(MPIError) {
        precondition(receive.count == send.count * size,
                     "allGather: receive holds \(receive.count) elements, needs \(send.count) × \(size) ranks")
        guard send.count > 0, let sendBase = send.baseAddress, let recvBase = receive.baseAddress else { return }
        if send.count <= maxElementsPerCall {
            try check("MPI_Allgather", MPI_Allgather(
                sendBase, Int32(send.count), T.mpiDatatype, recvBase, Int32(send.count), T.mpiDatatype, raw))
            return
        }
        // Over Int32 counts: one rank's block at a time, broadcast from its owner.
        for owner in 0..<size {
            let block = UnsafeMutableBufferPointer(rebasing: receive[owner * send.count ..< (owner + 1) * send.count])
            if owner == rank { _ = block.update(fromContentsOf: send) }
            try broadcast(block, root: owner)
        }
    }

    /// Array convenience for `allGather(_:into:)`.
    public func allGather<T: MPIScalar>(_ send: [T]) throws(MPIError) -> [T] {
        guard let first = send.first else { return [] }
        var receive = [T](repeating: first, count: send.count * size)
        let comm = self
        try send.withUnsafeBufferPointer { (s) throws(MPIError) in
            try receive.withUnsafeMutableBufferPointer { (r) throws(MPIError) in try comm.allGather(s, into: r) }
        }
        return receive
    }

    /// Ends every rank of the job with `code`. Print a clear message first: Open MPI 4.1
    /// garbles its own abort text. Does not return.
    public func abort(code: Int32) -> Never {
        MPI_Abort(raw, code)
        // MPI_Abort should not return; make sure the process ends if it does.
        _exit(code)
    }
}

extension Communicator {
    /// How many ranks of this communicator share this rank's host (its shared-memory node):
    /// what the host's memory must hold. Collective.
    public func ranksOnThisHost() throws(MPIError) -> Int {
        try withNodeCommunicator { node in node.size }
    }
}
