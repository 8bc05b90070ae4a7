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
    /// larger ones, and every other case, through `MPI_Allreduce`. 0: always `MPI_Allreduce`
    /// (`--allreduce mpi`). Must be the same on every rank.
    public var sharedMemoryLimit = 1 << 20
    /// How the latest allreduce was done, for reports.
    public private(set) var lastPath: AllReducePath = .none

    public enum AllReducePath: String, Codable, Sendable {
        case none = "none"
        case sharedMemory = "shared-memory window"
        case mpi = "MPI_Allreduce"
    }

    private enum Small { case untried, ready(SharedMemoryReducer), unavailable }
    private var small = Small.untried

    public init(_ communicator: Communicator?) { self.communicator = communicator }

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
        if separateWait {
            let arrived = Clock.now()
            try comm.barrier()
            let left = Clock.now()
            waitSeconds += left - arrived
            segments.append(Segment(kind: .wait, start: arrived, end: left))
            traffic[.wait, default: (0, 0)].calls += 1
        }
        let payload = m.count * MemoryLayout<Float>.size
        let reducer = payload <= sharedMemoryLimit ? try smallReducer(comm) : nil
        let start = Clock.now()
        if let reducer {
            m.storage.withUnsafeMutableBufferPointer { buffer in reducer.sum(buffer) }
            lastPath = .sharedMemory
        } else {
            try m.storage.withUnsafeMutableBufferPointer { buffer in try comm.allReduce(buffer, .sum) }
            lastPath = .mpi
        }
        record(.reduce, start: start, bytes: payload)
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

    private func record(_ kind: SegmentKind, start: Double, bytes payload: Int) {
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
        calls = 0
        segments.removeAll(keepingCapacity: true)
        traffic.removeAll()
    }
}
