import CMPI

extension Communicator {
    /// Splits this communicator (`MPI_Comm_split`): ranks passing the same `color` form one new
    /// communicator, ordered by `key` (ties by their rank here). Collective over every rank of
    /// this communicator; `name` labels the new one in reports and in MPI's own messages.
    public func split(color: Int, key: Int, name: String) throws(MPIError) -> Communicator {
        precondition(color >= 0 && color <= Int(Int32.max) && key >= 0 && key <= Int(Int32.max),
                     "split: color \(color) and key \(key) must be in 0 ... Int32.max")
        var out: MPI_Comm? = nil
        try check("MPI_Comm_split", MPI_Comm_split(raw, Int32(color), Int32(key), &out))
        let comm = Communicator(rawValue: out!)
        try check("MPI_Comm_set_errhandler", MPI_Comm_set_errhandler(comm.raw, mlatp_errors_return()))
        try check("MPI_Comm_set_name", MPI_Comm_set_name(comm.raw, name))
        return comm
    }

    /// The communicator's name (`MPI_Comm_get_name`): `MPI_COMM_WORLD` for the world, the
    /// name given to `split` otherwise.
    public var name: String {
        var buffer = [CChar](repeating: 0, count: Int(MPI_MAX_OBJECT_NAME) + 1)
        var length: Int32 = 0
        guard MPI_Comm_get_name(raw, &buffer, &length) == MPI_SUCCESS else { return "communicator" }
        return String(decoding: buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Gathers each rank's `send`, whose count may differ by rank, to every rank in rank order
    /// (`MPI_Allgatherv`): the counts are exchanged first, so no rank needs to know the others'.
    /// Returns the concatenation and each rank's count.
    public func allGather<T: MPIScalar>(varying send: [T]) throws(MPIError) -> (values: [T], counts: [Int]) {
        let counts = try allGather([Int64(send.count)]).map { Int($0) }
        let blocks = RankBlocks(counts: counts), total = blocks.total
        guard total > 0 else { return ([], counts) }
        var receive = [T](unsafeUninitializedCapacity: total) { _, n in n = total }
        let comm = self, mine = blocks[rank]
        try receive.withUnsafeMutableBufferPointer { (r) throws(MPIError) in
            _ = UnsafeMutableBufferPointer(rebasing: r[mine]).update(fromContentsOf: send)
            try comm.allGather(inPlace: r, blocks: blocks)
        }
        return (receive, counts)
    }

    /// Sums `buffer` element-wise over the ranks and leaves block r (`buffer.count / size`
    /// elements, rank-major) on rank r, in `into` (`MPI_Reduce_scatter_block`).
    public func reduceScatter<T: MPIScalar>(_ buffer: UnsafeBufferPointer<T>, into block: UnsafeMutableBufferPointer<T>,
                                            _ op: ReduceOp = .sum) throws(MPIError) {
        precondition(buffer.count == block.count * size,
                     "reduceScatter: \(buffer.count) elements do not split into \(size) blocks of \(block.count)")
        guard block.count > 0, let src = buffer.baseAddress, let dst = block.baseAddress else {
            // Every rank still enters the collective, with zero elements.
            var scratch: T? = nil
            return try withUnsafeMutablePointer(to: &scratch) { (p) throws(MPIError) in
                try check("MPI_Reduce_scatter_block", MPI_Reduce_scatter_block(p, p, 0, T.mpiDatatype, op.raw, raw))
            }
        }
        guard block.count <= maxElementsPerCall else { preconditionFailure("reduceScatter: \(block.count) elements per rank exceed one MPI call") }
        try check("MPI_Reduce_scatter_block", MPI_Reduce_scatter_block(src, dst, Int32(block.count), T.mpiDatatype, op.raw, raw))
    }

    /// Releases a communicator made by `split` (`MPI_Comm_free`). Collective over its ranks.
    public func free() throws(MPIError) {
        var c: MPI_Comm? = raw
        try check("MPI_Comm_free", MPI_Comm_free(&c))
    }
}

extension Communicator {
    /// Sends `send` to `partner` and receives the same count from it into `receive` in one call
    /// (`MPI_Sendrecv`): the pairwise step of a recursive-doubling exchange.
    public func exchange<T: MPIScalar>(_ send: UnsafeBufferPointer<T>, with partner: Int,
                                       into receive: UnsafeMutableBufferPointer<T>, tag: Int = 0) throws(MPIError) {
        precondition(send.count == receive.count, "exchange: sends \(send.count) elements but receives \(receive.count)")
        precondition((0..<size).contains(partner), "exchange: partner \(partner) is outside 0 ..< \(size)")
        guard send.count > 0, let s = send.baseAddress, let r = receive.baseAddress else { return }
        for (offset, length) in chunks(count: send.count) {
            try check("MPI_Sendrecv", MPI_Sendrecv(s + offset, Int32(length), T.mpiDatatype, Int32(partner), Int32(tag),
                                                   r + offset, Int32(length), T.mpiDatatype, Int32(partner), Int32(tag),
                                                   raw, mlatp_status_ignore()))
        }
    }
}
