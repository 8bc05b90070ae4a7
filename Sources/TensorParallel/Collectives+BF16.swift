import SwiftMPI
import TensorCore

extension Collectives {
    /// The bf16 reduction (`BF16Reduction`): this rank's partial `m` [n] rounded to bf16, summed
    /// over the ranks in rank order, the sum left in `m` on every rank, the same bits everywhere.
    ///
    /// Through the shared-memory window when `reducer` is given: every rank's rounded partial is
    /// read by every rank, each of which sums all of them. Otherwise with a ring's traffic,
    /// moving bf16 bit patterns (Open MPI 4.1 has no bf16 datatype), n split into tp chunks
    /// (`BF16Reduction.Chunks`), chunk c owned by rank c:
    ///
    ///     reduce-scatter  MPI_Alltoallv: rank r sends its piece of chunk c to rank c (c ≠ r);
    ///                     rank c sums chunk c's tp pieces in rank order (`sumChunk`)
    ///     all-gather      MPI_Allgatherv: each owner's summed chunk, as bf16, to every rank
    ///
    /// Each rank sends and receives `Chunks.valuesSent` values, 2(tp−1)/tp·n, and sums n/tp.
    /// Collective over `comm`: every rank enters both collectives, an empty chunk included.
    func allReduceBF16(_ m: inout Matrix, _ comm: Communicator, _ reducer: SharedMemoryReducer?) throws {
        let n = m.count, p = comm.size, me = comm.rank
        if bf16Send.count != n { bf16Send = [BFloat16](repeating: BFloat16(bitPattern: 0), count: n) }
        m.storage.withUnsafeBufferPointer { src in bf16Send.withUnsafeMutableBufferPointer { BF16.round(src, into: $0) } }
        if let reducer {
            bf16Send.withUnsafeBytes { mine in
                m.storage.withUnsafeMutableBufferPointer { out in
                    reducer.exchange(mine) { parts in BF16Reduction.sum(parts.map { $0.assumingMemoryBound(to: BFloat16.self) }, into: out) }
                }
            }
            lastPath = .sharedMemory
            return
        }
        let chunks = BF16Reduction.Chunks(count: n, ranks: p), own = chunks.range(me), k = own.count
        if bf16Received.count != p * k { bf16Received = [BFloat16](repeating: BFloat16(bitPattern: 0), count: p * k) }
        // Reduce-scatter: chunk c to its owner; this rank's own piece stays where it is.
        let scatter = RankBlocks(counts: chunks.ranges.enumerated().map { $0 == me ? 0 : $1.count }, offsets: chunks.ranges.map(\.lowerBound))
        let pieces = RankBlocks(counts: (0..<p).map { $0 == me ? 0 : k }, offsets: (0..<p).map { $0 * k })
        try bf16Send.withUnsafeBufferPointer { send in
            try bf16Received.withUnsafeMutableBufferPointer { received in
                try comm.allToAll(send.bits, blocks: scatter, into: received.bits, blocks: pieces)
            }
        }
        // The owner's sum, into m, and back into the send buffer as bf16 (exact: the sum is bf16).
        bf16Send.withUnsafeMutableBufferPointer { send in
            bf16Received.withUnsafeBufferPointer { received in
                m.storage.withUnsafeMutableBufferPointer { out in
                    let sum = UnsafeMutableBufferPointer(rebasing: out[own])
                    BF16Reduction.sumChunk(own: UnsafeBufferPointer(rebasing: send[own]), received: received, rank: me, ranks: p, into: sum)
                    BF16.round(UnsafeBufferPointer(sum), into: UnsafeMutableBufferPointer(rebasing: send[own]))
                }
            }
        }
        // All-gather: every owner's sum to every rank, then the other chunks widened into m.
        let gather = RankBlocks(counts: chunks.ranges.map(\.count), offsets: chunks.ranges.map(\.lowerBound))
        try bf16Send.withUnsafeMutableBufferPointer { gathered in try comm.allGather(inPlace: gathered.bits, blocks: gather) }
        bf16Send.withUnsafeBufferPointer { gathered in
            m.storage.withUnsafeMutableBufferPointer { out in
                for other in [0 ..< own.lowerBound, own.upperBound ..< n] {
                    BF16.widen(UnsafeBufferPointer(rebasing: gathered[other]), into: UnsafeMutableBufferPointer(rebasing: out[other]))
                }
            }
        }
        sentBytes += MemoryLayout<UInt16>.size * (scatter.total + (p - 1) * k)
        lastPath = .bf16ReduceScatterAllGather
    }
}

extension UnsafeBufferPointer<BFloat16> {
    /// The same memory as the 16-bit patterns MPI moves.
    var bits: UnsafeBufferPointer<UInt16> { UnsafeBufferPointer<UInt16>(start: baseAddress.map { UnsafeRawPointer($0).assumingMemoryBound(to: UInt16.self) }, count: count) }
}

extension UnsafeMutableBufferPointer<BFloat16> {
    var bits: UnsafeMutableBufferPointer<UInt16> {
        UnsafeMutableBufferPointer<UInt16>(start: baseAddress.map { UnsafeMutableRawPointer($0).assumingMemoryBound(to: UInt16.self) }, count: count)
    }
}
