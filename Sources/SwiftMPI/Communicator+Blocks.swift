import CMPI

/// Where each rank's block sits in the buffer of a varying-count collective (`MPI_Alltoallv`,
/// `MPI_Allgatherv`): block r is `offsets[r] ..< offsets[r] + counts[r]`, one entry per rank.
/// A block may be empty; its rank still enters the collective.
public struct RankBlocks: Sendable, Equatable {
    public var counts: [Int]
    public var offsets: [Int]

    public init(counts: [Int], offsets: [Int]) {
        precondition(counts.count == offsets.count, "RankBlocks: \(counts.count) counts but \(offsets.count) offsets")
        precondition(zip(counts, offsets).allSatisfy { $0 >= 0 && $1 >= 0 }, "RankBlocks: negative count or offset in \(counts), \(offsets)")
        self.counts = counts
        self.offsets = offsets
    }

    /// Blocks laid end to end in rank order.
    public init(counts: [Int]) {
        var offsets: [Int] = [], end = 0
        for c in counts { offsets.append(end); end += c }
        self.init(counts: counts, offsets: offsets)
    }

    /// Rank r's block.
    public subscript(r: Int) -> Range<Int> { offsets[r] ..< offsets[r] + counts[r] }

    /// The elements in all blocks.
    public var total: Int { counts.reduce(0, +) }

    /// Counts and offsets as MPI takes them, after checking that there is one block per rank of
    /// `ranks` and that every block lies inside a buffer of `capacity` elements.
    func mpi(ranks: Int, capacity: Int, _ what: StaticString) -> (counts: [Int32], offsets: [Int32]) {
        precondition(counts.count == ranks, "\(what): \(counts.count) blocks for \(ranks) ranks")
        precondition((0..<ranks).allSatisfy { self[$0].upperBound <= capacity },
                     "\(what): blocks \(counts) at \(offsets) overrun a buffer of \(capacity) elements")
        guard capacity <= maxElementsPerCall else { preconditionFailure("\(what): a buffer of \(capacity) elements exceeds one MPI call") }
        return (counts.map { Int32($0) }, offsets.map { Int32($0) })
    }
}

extension Communicator {
    /// Sends block c of `send` (`sendBlocks[c]`) to rank c and puts rank r's block to this rank
    /// in `receiveBlocks[r]` of `receive` (`MPI_Alltoallv`). Rank c's receive count from rank r
    /// must equal rank r's send count to c; a zero count on both sides skips a pair (a rank's
    /// own block need not travel). Collective: every rank enters, with zero counts where it has nothing.
    public func allToAll<T: MPIScalar>(_ send: UnsafeBufferPointer<T>, blocks sendBlocks: RankBlocks,
                                       into receive: UnsafeMutableBufferPointer<T>, blocks receiveBlocks: RankBlocks) throws(MPIError) {
        let s = sendBlocks.mpi(ranks: size, capacity: send.count, "allToAll send")
        let r = receiveBlocks.mpi(ranks: size, capacity: receive.count, "allToAll receive")
        try withBase(UnsafeMutableBufferPointer(mutating: send)) { (sendBase) throws(MPIError) in
            try withBase(receive) { (receiveBase) throws(MPIError) in
                try check("MPI_Alltoallv", MPI_Alltoallv(sendBase, s.counts, s.offsets, T.mpiDatatype,
                                                         receiveBase, r.counts, r.offsets, T.mpiDatatype, raw))
            }
        }
    }

    /// Gathers every rank's block of `buffer` to every rank, in place (`MPI_Allgatherv` with
    /// `MPI_IN_PLACE`): this rank's values are already at `blocks[rank]`; afterwards block r holds
    /// rank r's. Every rank passes the same `blocks`. Collective: an empty block still enters.
    public func allGather<T: MPIScalar>(inPlace buffer: UnsafeMutableBufferPointer<T>, blocks: RankBlocks) throws(MPIError) {
        let b = blocks.mpi(ranks: size, capacity: buffer.count, "allGather(inPlace:)")
        try withBase(buffer) { (base) throws(MPIError) in
            try check("MPI_Allgatherv", MPI_Allgatherv(mlatp_in_place(), 0, T.mpiDatatype, base, b.counts, b.offsets, T.mpiDatatype, raw))
        }
    }

    /// `buffer`'s address, or a scratch one for an empty buffer: a collective with nothing to
    /// move still needs a valid pointer on every rank.
    private func withBase<T, R>(_ buffer: UnsafeMutableBufferPointer<T>,
                                _ body: (UnsafeMutablePointer<T>) throws(MPIError) -> R) throws(MPIError) -> R {
        if let base = buffer.baseAddress { return try body(base) }
        let scratch = UnsafeMutablePointer<T>.allocate(capacity: 1)
        defer { scratch.deallocate() }
        return try body(scratch)
    }
}
