import SwiftMPI
import TensorCore

extension Collectives {
    /// Gathers every rank's block of `buffer` to every rank, in place (`MPI_Allgatherv` with
    /// `MPI_IN_PLACE`): the blocks lie end to end in rank order, rank r's `counts[r]` elements,
    /// and this rank's are already in its own. Records a gather of this rank's block. Nothing to
    /// do for a single rank. Collective: every rank enters with the same `counts`, an empty block
    /// included.
    public func allGather(inPlace buffer: UnsafeMutableBufferPointer<Float>, counts: [Int]) throws {
        try gatherBlocks(buffer, counts: counts, bytesPerElement: MemoryLayout<Float>.size)
    }

    /// The same for bf16 values, moved as their 16-bit patterns (Open MPI 4.1 has no bf16 datatype).
    public func allGather(inPlace buffer: UnsafeMutableBufferPointer<BFloat16>, counts: [Int]) throws {
        try gatherBlocks(buffer.bits, counts: counts, bytesPerElement: MemoryLayout<UInt16>.size)
    }

    private func gatherBlocks<T: MPIScalar>(_ buffer: UnsafeMutableBufferPointer<T>, counts: [Int], bytesPerElement: Int) throws {
        guard let comm = communicator, comm.size > 1 else { return }
        precondition(counts.count == comm.size, "allGather: \(counts.count) blocks for \(comm.size) ranks")
        let start = Clock.now()
        try comm.allGather(inPlace: buffer, blocks: RankBlocks(counts: counts))
        record(.gather, start: start, bytes: counts[comm.rank] * bytesPerElement)
    }
}
