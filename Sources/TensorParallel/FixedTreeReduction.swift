import SwiftMPI
import TensorCore

/// The reduction of the invariant forward (`--invariant`): a binary tree whose shape does not
/// depend on how many ranks share it, so the bits of the result do not either.
///
/// Partition: a power-of-two group of ranks, each holding one subtree's value (its blocks
/// already combined in the same tree). Collective: recursive doubling over point-to-point
/// exchanges (`MPI_Sendrecv`), log₂(size) steps of the whole buffer; at each step a rank and its
/// partner combine the same two values, and the combine is symmetric (a + b = b + a exactly;
/// the log-sum-exp merge is written so), so both hold the same bits afterwards — the value of
/// the tree's next level. `Pairing` says which level the ranks form first:
/// - `.adjacentFirst` (partner r ⊕ 1, then r ⊕ 2, …): rank r holds the contiguous blocks
///   `[r·B/size, (r+1)·B/size)` of B leaves (o_proj's head blocks);
/// - `.strideFirst` (partner r ⊕ size/2, then r ⊕ size/4, …): rank r holds the leaves ≡ r
///   (mod size) of an interleaved split (the key classes of decode context parallelism).
public enum FixedTreeReduction {
    public enum Pairing: Sendable { case adjacentFirst, strideFirst }

    /// The partners of `rank` among `size` ranks, in the order the tree meets them.
    public static func partners(rank: Int, size: Int, pairing: Pairing) -> [Int] {
        precondition(size > 0 && size & (size - 1) == 0, "a fixed tree over \(size) ranks: the count must be a power of two")
        var bits: [Int] = []
        var b = 1
        while b < size { bits.append(b); b <<= 1 }
        return (pairing == .adjacentFirst ? bits : bits.reversed()).map { rank ^ $0 }
    }

    /// `a[i] = a[i] + b[i]`: the tree's sum of two subtrees (the same bits in either order).
    public static func add(_ a: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>, count: Int) {
        for i in 0..<count { a[i] = a[i] + b[i] }
    }
}

extension Collectives {
    /// Combines `buffer` over the ranks along the fixed tree (`FixedTreeReduction`), in place:
    /// every rank ends with the root's value. `combine(mine, partners, count)` must be symmetric.
    /// `scratch` holds the partner's copy (grown to the buffer's size). A no-op for one rank.
    public func treeReduce(_ buffer: UnsafeMutableBufferPointer<Float>, pairing: FixedTreeReduction.Pairing, as kind: SegmentKind,
                           scratch: inout [Float],
                           combine: (UnsafeMutablePointer<Float>, UnsafePointer<Float>, Int) -> Void) throws {
        guard let comm = communicator, comm.size > 1 else { return }
        if scratch.count < buffer.count { scratch = [Float](repeating: 0, count: buffer.count) }
        if kind == .reduce { try waitForSlowerRanks(comm) }
        let start = Clock.now()
        for partner in FixedTreeReduction.partners(rank: comm.rank, size: comm.size, pairing: pairing) {
            try scratch.withUnsafeMutableBufferPointer { theirs in
                let part = UnsafeMutableBufferPointer(rebasing: theirs[0 ..< buffer.count])
                try comm.exchange(UnsafeBufferPointer(buffer), with: partner, into: part)
                if let mine = buffer.baseAddress, let other = part.baseAddress { combine(mine, other, buffer.count) }
            }
        }
        record(kind, start: start, bytes: buffer.count * MemoryLayout<Float>.size)
        if kind == .reduce { lastPath = .fixedTree }
    }
}
