import SwiftMPI
import TensorCore

/// The collectives the parallel layers use, with the time and bytes they cost.
///
/// Wraps a `Communicator`; with none it is the unsharded reference (tp = 1, no traffic).
/// Each call records its segments on `Clock.now()` (one clock for every process of a host):
/// the reduction, and with `separateWait` the barrier before it, so a report can separate
/// compute from communication and draw a per-rank timeline.
public final class Collectives {
    public let communicator: Communicator?
    /// Seconds spent inside collectives since the last `resetCounters()`.
    public private(set) var seconds: Double = 0
    /// Payload bytes each rank contributed since the last `resetCounters()`.
    public private(set) var bytes: Int = 0
    /// Bytes this rank handed MPI for other ranks since the last `resetCounters()`, in the
    /// collectives whose exchange `Collectives` lays out itself: the bf16 reduction's reduce-scatter
    /// and all-gather (`BF16Reduction.Chunks.valuesSent`). The f32 collectives leave their traffic to
    /// MPI's own algorithm and the shared-memory window sends nothing; neither is counted.
    public internal(set) var sentBytes: Int = 0
    /// Collective calls since the last `resetCounters()`.
    public private(set) var calls: Int = 0
    /// What a recorded segment was: the wait at the barrier, the allreduce itself, or (decode
    /// context parallelism) an all-gather or a reduce-scatter.
    public enum SegmentKind: String, Codable, Sendable, CaseIterable { case wait, reduce, gather, scatter }
    public struct Segment: Sendable, Equatable {
        public var kind: SegmentKind
        public var start: Double
        public var end: Double
    }
    /// Segments of the collectives since the last `resetCounters()`, on `Clock.now()`.
    public private(set) var segments: [Segment] = []
    /// When true, each allreduce is preceded by a barrier whose time is recorded apart, in
    /// `waitSeconds`: then `seconds` is the reduction itself, and `waitSeconds` is the time this
    /// rank waited for slower ranks to arrive (load imbalance). Off by default; `bench` turns it on.
    public var separateWait = false
    /// Seconds spent waiting at that barrier since the last `resetCounters()` (0 unless `separateWait`).
    public private(set) var waitSeconds: Double = 0

    /// Payloads of at most this many bytes are reduced through a shared-memory window
    /// (`SharedMemoryReducer`) when every rank is on one host and no core hosts two ranks;
    /// larger ones, and every other case, through `MPI_Allreduce` (a bf16 reduction: its
    /// reduce-scatter and all-gather of bf16 chunks). 0: always MPI (`--allreduce mpi`). Must be
    /// the same on every rank.
    public var sharedMemoryLimit = 1 << 20
    /// How the latest allreduce was done, for reports.
    public internal(set) var lastPath: AllReducePath = .none

    public enum AllReducePath: String, Codable, Sendable {
        case none = "none"
        case sharedMemory = "shared-memory window"
        case mpi = "MPI_Allreduce"
        /// A bf16 reduction with a ring's traffic: a reduce-scatter of bf16 chunks (`MPI_Alltoallv`),
        /// each chunk summed in rank order by its owner, then an all-gather of the sums (`MPI_Allgatherv`).
        /// The invariant forward's fixed tree: recursive doubling over `MPI_Sendrecv` (`FixedTreeReduction`).
        case fixedTree = "fixed tree: recursive doubling over MPI_Sendrecv"
        case bf16ReduceScatterAllGather = "MPI_Alltoallv + MPI_Allgatherv of bf16 chunks, each summed in rank order by its owner"
    }

    /// What `allReduceSum` reduces in (`--allreduce-dtype`), fixed when the collectives are built:
    /// f32, the partials as accumulated; or bf16, as a bf16 engine reduces its bf16 partials
    /// (`BF16Reduction`: each partial rounded, each addition rounded, in rank order). Must be the
    /// same on every rank.
    public let reducePrecision: Precision
    /// The bf16 path's buffers, reused: this rank's rounded partial (then the gathered sums), and
    /// the pieces of this rank's chunk the other ranks sent.
    var bf16Send: [BFloat16] = [], bf16Received: [BFloat16] = []

    private enum Small { case untried, ready(SharedMemoryReducer), unavailable }
    private var small = Small.untried

    /// Collectives over `communicator` whose sum-allreduce (a row-parallel layer's reduction)
    /// runs in `reducePrecision`.
    public init(_ communicator: Communicator?, reducePrecision: Precision = .f32) {
        self.communicator = communicator
        self.reducePrecision = reducePrecision
    }

    /// The communicator the collectives run on, as reports name it.
    public var name: String { communicator?.name ?? "none (unsharded)" }

    /// Calls and bytes (each rank's contribution) per kind since the last `resetCounters()`.
    public private(set) var traffic: [SegmentKind: (calls: Int, bytes: Int)] = [:]

    /// The shared-memory reducer, made (collectively) by the first small allreduce that asks.
    private func smallReducer(_ comm: Communicator) throws -> SharedMemoryReducer? {
        switch small {
        case let .ready(r): return r
        case .unavailable: return nil
        case .untried:
            let r = try SharedMemoryReducer.make(comm, capacity: sharedMemoryLimit / MemoryLayout<Float>.size)
            small = r.map { .ready($0) } ?? .unavailable
            return r
        }
    }

    /// The unsharded reference: no communicator.
    public static var local: Collectives { Collectives(nil) }

    /// Ranks taking part (1 without a communicator).
    public var size: Int { communicator?.size ?? 1 }

    /// Sums `m` element-wise across ranks, in place. A no-op for a single rank.
    public func allReduceSum(_ m: inout Matrix) throws {
        guard let comm = communicator, comm.size > 1 else { return }
        try waitForSlowerRanks(comm)
        let payload = m.count * reducePrecision.bytesPerElement
        let reducer = payload <= sharedMemoryLimit ? try smallReducer(comm) : nil
        let start = Clock.now()
        switch (reducePrecision, reducer) {
        case (.f32, let reducer?):
            m.storage.withUnsafeMutableBufferPointer { buffer in reducer.sum(buffer) }
            lastPath = .sharedMemory
        case (.f32, nil):
            try m.storage.withUnsafeMutableBufferPointer { buffer in try comm.allReduce(buffer, .sum) }
            lastPath = .mpi
        case (.bf16, _):
            try allReduceBF16(&m, comm, reducer)
        }
        record(.reduce, start: start, bytes: payload)
    }

    /// With `separateWait`, the barrier before a reduction, its time recorded as the wait.
    func waitForSlowerRanks(_ comm: Communicator) throws {
        guard separateWait else { return }
        let arrived = Clock.now()
        try comm.barrier()
        let left = Clock.now()
        waitSeconds += left - arrived
        segments.append(Segment(kind: .wait, start: arrived, end: left))
        traffic[.wait, default: (0, 0)].calls += 1
    }

    /// Gathers every rank's `send` (the same count on each) into `receive`, rank-major
    /// (`MPI_Allgather`). A copy for a single rank.
    public func allGather(_ send: UnsafeBufferPointer<Float>, into receive: UnsafeMutableBufferPointer<Float>) throws {
        guard let comm = communicator, comm.size > 1 else { _ = receive.update(fromContentsOf: send); return }
        let start = Clock.now()
        try comm.allGather(send, into: receive)
        record(.gather, start: start, bytes: send.count * MemoryLayout<Float>.size)
    }

    /// Sums `buffer` over the ranks and leaves block r (rank-major, `block.count` floats) on
    /// rank r (`MPI_Reduce_scatter_block`). A copy for a single rank.
    public func reduceScatter(_ buffer: UnsafeBufferPointer<Float>, into block: UnsafeMutableBufferPointer<Float>) throws {
        guard let comm = communicator, comm.size > 1 else { _ = block.update(fromContentsOf: buffer); return }
        let start = Clock.now()
        try comm.reduceScatter(buffer, into: block)
        record(.scatter, start: start, bytes: buffer.count * MemoryLayout<Float>.size)
    }

    func record(_ kind: SegmentKind, start: Double, bytes payload: Int) {
        let end = Clock.now()
        seconds += end - start
        bytes += payload
        calls += 1
        segments.append(Segment(kind: kind, start: start, end: end))
        traffic[kind, default: (0, 0)].calls += 1
        traffic[kind, default: (0, 0)].bytes += payload
    }

    public func resetCounters() {
        seconds = 0
        waitSeconds = 0
        bytes = 0
        sentBytes = 0
        calls = 0
        segments.removeAll(keepingCapacity: true)
        traffic.removeAll()
    }
}
