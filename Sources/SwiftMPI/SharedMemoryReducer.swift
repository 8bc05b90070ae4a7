#if canImport(Glibc)
import Glibc
#endif
import CMPI

/// A float sum-allreduce through an MPI shared-memory window, for small payloads between
/// ranks on one host: a decode step's o_proj partial sums (28 KB at DeepSeek-V3 size).
///
/// Layout: every rank owns one segment of the window (`MPI_Win_allocate_shared`): a 64-byte
/// header holding its generation counter, then two slots of `capacity` floats. Call g writes
/// the rank's buffer into slot `g % 2`, publishes `g` (release), waits until every peer has
/// published `g` (acquire), then sums all slots in rank order, so that every rank computes
/// the same additions in the same order and ends with bitwise the same result. Two slots
/// make one wait per call enough: a rank reaches call g only after every peer has published
/// `g − 1`, which a peer does only after it has finished reading call g − 2, the last call to
/// use slot `g % 2`.
///
/// Why: `MPI_Allreduce` of a small payload right after a weight-streaming forward runs
/// cache-cold, and Open MPI's shared-memory path then costs 3–4× its back-to-back time
/// (60–90 µs against 14–22 µs for 28 KB here); this one touches only the payload and a
/// counter per rank (10–22 µs cold). The same reasoning as the custom all-reduce kernels of
/// vLLM and SGLang for decode, on CPU memory. Waiting spins (yielding after a while), so it
/// is only made when no core hosts two ranks; otherwise `make` returns nil.
public final class SharedMemoryReducer {
    /// Floats one call can reduce.
    public let capacity: Int
    let rank: Int
    let size: Int
    let counters: [UnsafeMutablePointer<UInt64>]
    let slots: [[UnsafeMutablePointer<Float>]]          // [rank][slot]
    var window: MPI_Win?
    var generation: UInt64 = 0

    /// Collective over `comm`. nil (on every rank) when its ranks are not all on one host, or
    /// when the job has more ranks on this host than online CPUs (spinning peers would then
    /// wait for descheduled ones; a communicator of a data-parallel group counts every rank of
    /// the job on the host, not only its own).
    public static func make(_ comm: Communicator, capacity: Int) throws(MPIError) -> SharedMemoryReducer? {
        let cpus = sysconf(Int32(_SC_NPROCESSORS_ONLN))
        let onHost = try comm.ranksOnThisHost()
        // The job's ranks on this host, from mpirun (a world collective here could deadlock: only
        // this communicator's ranks are in this call).
        let hostRanks = Environment.localRanks ?? onHost
        var usable: [Int64] = [comm.size > 1 && onHost == comm.size && hostRanks <= cpus ? 1 : 0]
        try comm.allReduce(&usable, .min)
        guard usable[0] == 1 else { return nil }
        return try SharedMemoryReducer(comm, capacity: capacity)
    }

    private init(_ comm: Communicator, capacity: Int) throws(MPIError) {
        self.capacity = capacity
        rank = comm.rank
        size = comm.size
        let slotBytes = (capacity * 4 + 63) / 64 * 64, header = 64
        var base: UnsafeMutableRawPointer? = nil
        var win: MPI_Win? = nil
        try check("MPI_Win_allocate_shared", withUnsafeMutablePointer(to: &base) { p in
            MPI_Win_allocate_shared(MPI_Aint(header + 2 * slotBytes), 1, mlatp_info_null(), comm.raw, p, &win)
        })
        window = win
        var counters: [UnsafeMutablePointer<UInt64>] = [], slots: [[UnsafeMutablePointer<Float>]] = []
        for r in 0..<size {
            var bytes: MPI_Aint = 0, unit: Int32 = 0
            var peer: UnsafeMutableRawPointer? = nil
            try check("MPI_Win_shared_query", withUnsafeMutablePointer(to: &peer) { p in
                MPI_Win_shared_query(win, Int32(r), &bytes, &unit, p)
            })
            let b = peer!
            counters.append(b.assumingMemoryBound(to: UInt64.self))
            slots.append([(b + header).assumingMemoryBound(to: Float.self), (b + header + slotBytes).assumingMemoryBound(to: Float.self)])
        }
        self.counters = counters
        self.slots = slots
        mlatp_store_release(counters[rank], 0)
        try comm.barrier()                               // every counter is 0 before the first call
    }

    /// Sums `buffer` across the ranks, in place. Every rank must call it with the same count.
    public func sum(_ buffer: UnsafeMutableBufferPointer<Float>) {
        precondition(buffer.count <= capacity, "SharedMemoryReducer: \(buffer.count) floats exceed its capacity of \(capacity)")
        let n = buffer.count
        exchange(UnsafeRawBufferPointer(buffer)) { parts in
            guard let out = buffer.baseAddress else { return }
            out.update(from: parts[0].assumingMemoryBound(to: Float.self), count: n)
            for q in 1..<size {
                let src = parts[q].assumingMemoryBound(to: Float.self)
                for i in 0..<n { out[i] += src[i] }
            }
        }
    }

    /// Every rank's `bytes` (the same count on each), for `body` to combine: publishes this rank's
    /// bytes, waits for every peer's, then calls `body` with each rank's bytes in rank order (valid
    /// only inside `body`). An all-gather through the window: what a reduction in a type MPI lacks
    /// (bf16) is built on.
    public func exchange(_ bytes: UnsafeRawBufferPointer, _ body: (_ parts: [UnsafeRawPointer]) -> Void) {
        precondition(bytes.count <= 4 * capacity, "SharedMemoryReducer: \(bytes.count) bytes exceed its capacity of \(4 * capacity)")
        generation += 1
        let g = generation, k = Int(g & 1)
        if let src = bytes.baseAddress { UnsafeMutableRawPointer(slots[rank][k]).copyMemory(from: src, byteCount: bytes.count) }
        mlatp_store_release(counters[rank], g)
        for q in 0..<size where q != rank { wait(q, atLeast: g) }
        body((0..<size).map { UnsafeRawPointer(slots[$0][k]) })
    }

    private func wait(_ peer: Int, atLeast g: UInt64) {
        var spins = 0
        while mlatp_load_acquire(counters[peer]) < g {
            spins += 1
            if spins > 4096 { sched_yield() }
        }
    }

    /// Frees the window (collective). The reducer cannot be used afterwards.
    public func free() throws(MPIError) {
        guard window != nil else { return }
        var w = window
        window = nil
        try check("MPI_Win_free", MPI_Win_free(&w))
    }
}

extension Environment {
    /// The job's ranks on this host as Open MPI's launcher announces them
    /// (`OMPI_COMM_WORLD_LOCAL_SIZE`); nil outside mpirun.
    public static var localRanks: Int? {
        guard let text = getenv("OMPI_COMM_WORLD_LOCAL_SIZE") else { return nil }
        return Int(String(cString: text))
    }
}
