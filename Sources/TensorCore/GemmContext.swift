import CDNNL
import Foundation

/// The state behind `Gemm`'s products that is not in the operands: oneDNN's engine and stream,
/// one matmul primitive per distinct shape (made on first use, then reused), the configurations
/// oneDNN could not serve, the scratch buffers of the bf16 paths, and a tally of which kernel ran.
///
/// Threads: mla-tp runs one thread per rank, so nothing here is built for concurrency; a lock
/// around each product that touches this state keeps it correct anyway (tests run in parallel),
/// at the cost of running such products one at a time per context.
public final class GemmContext: @unchecked Sendable {
    /// The context `Gemm` uses unless given another.
    public static let shared = GemmContext()

    /// Bytes of f32 scratch the widening fallback may use for one block of weight columns or rows
    /// (at least 16 of them, whatever this says).
    public var widenBlockBytes: Int {
        get { lock.withLock { blockBytes } }
        set { lock.withLock { blockBytes = newValue } }
    }

    /// `widenBlockBytes` for code that already holds the lock.
    var widenBlockBytesLocked: Int { blockBytes }

    private let lock = NSLock()
    private var blockBytes = 32 << 20
    private var engine: dnnl_engine_t?
    private var stream: dnnl_stream_t?
    private var primitives: [MatmulKey: (primitive: MatmulPrimitive, used: Int)] = [:]
    private var capacity = 256
    private var uses = 0
    private var failures: [MatmulKey: DNNLError] = [:]
    private var created = 0
    private var tally: [GemmKernel: Int] = [:]
    let scratchA = Scratch(), scratchB = Scratch(), scratchC = Scratch()
    /// The fp8 route's dequantized weight tile and its activations rounded to bf16 once for every
    /// tile (the bf16 routes it calls use the other three, and scratchC only for a bf16 C).
    let scratchW = Scratch(), scratchX = Scratch()

    public init() {}

    deinit {
        primitives.removeAll()
        if let stream { dnnl_stream_destroy(stream) }
        if let engine { dnnl_engine_destroy(engine) }
    }

    /// The most primitives kept; past it the least recently used is dropped (shapes whose row count
    /// changes with every batch would otherwise grow the cache without bound).
    public var primitiveCapacity: Int {
        get { lock.withLock { capacity } }
        set { lock.withLock { capacity = max(1, newValue) } }
    }

    /// oneDNN primitives kept now.
    public var primitivesCached: Int { lock.withLock { primitives.count } }

    /// oneDNN primitives this context has created (a product of an already-seen key creates none).
    public var primitivesCreated: Int { lock.withLock { created } }

    /// How many products each kernel has run in this context.
    public var kernelsUsed: [GemmKernel: Int] { lock.withLock { tally } }

    /// The configurations oneDNN refused, and why (e.g. `unimplemented` for bf16 on AVX2).
    public var oneDNNFailures: [MatmulKey: DNNLError] { lock.withLock { failures } }

    /// Runs `body` holding the context's lock; `body` gets the context's unlocked state.
    func locked<R, E: Error>(_ body: (GemmContext) throws(E) -> R) throws(E) -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(self)
    }

    /// Frees the scratch buffers the bf16 and fp8 routes grew to their largest product (the widened
    /// fallback's weight blocks, rounded activations, f32 results, dequantized fp8 tiles); the next
    /// product that needs one allocates it again. What a decode-only process calls after the prompt.
    public func releaseScratch() {
        lock.withLock { for s in [scratchA, scratchB, scratchC, scratchW, scratchX] { s.release() } }
    }

    /// Bytes the scratch buffers hold now.
    public var scratchBytes: Int { lock.withLock { [scratchA, scratchB, scratchC, scratchW, scratchX].reduce(0) { $0 + $1.capacity } } }

    /// Counts one product by `kernel`. Call with the lock held.
    func record(_ kernel: GemmKernel) { tally[kernel, default: 0] += 1 }

    /// The primitive for `key`, made on first use. Throws (and remembers, so that it is not
    /// retried on every call) when oneDNN cannot make one. Call with the lock held.
    func primitive(_ key: MatmulKey) throws(DNNLError) -> MatmulPrimitive {
        uses += 1
        if let entry = primitives[key] {
            primitives[key]!.used = uses
            return entry.primitive
        }
        if let failure = failures[key] { throw failure }
        do {
            let p = try MatmulPrimitive(key, engine: try cpuEngine())
            if primitives.count >= capacity, let oldest = primitives.min(by: { $0.value.used < $1.value.used })?.key {
                primitives[oldest] = nil
            }
            primitives[key] = (p, uses)
            created += 1
            return p
        } catch {
            failures[key] = error
            throw error
        }
    }

    /// The primitive's stream (made with the engine). Call with the lock held.
    func cpuStream() throws(DNNLError) -> dnnl_stream_t {
        if let stream { return stream }
        var s: dnnl_stream_t?
        try OneDNN.check("dnnl_stream_create", dnnl_stream_create(&s, try cpuEngine(), dnnl_stream_default_flags.rawValue))
        stream = s
        return s!
    }

    func cpuEngine() throws(DNNLError) -> dnnl_engine_t {
        if let engine { return engine }
        var e: dnnl_engine_t?
        try OneDNN.check("dnnl_engine_create", dnnl_engine_create(&e, dnnl_cpu, 0))
        engine = e
        return e!
    }
}

/// A growable scratch buffer (64-byte aligned, never shrunk until released): the GEMM routes'
/// bounded blocks and the attention kernels' gathered keys. Its contents do not survive a call.
public final class Scratch {
    private var base: UnsafeMutableRawPointer?
    /// Bytes allocated now.
    private(set) var capacity = 0

    public init() {}

    deinit { base?.deallocate() }

    /// At least `bytes` bytes.
    public func bytes(_ bytes: Int) -> UnsafeMutableRawPointer {
        if bytes > capacity || base == nil {
            base?.deallocate()
            capacity = max(bytes, 64)
            base = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 64)
        }
        return base!
    }

    /// Frees the buffer (the next `bytes` allocates again).
    public func release() {
        base?.deallocate()
        base = nil
        capacity = 0
    }

    public func floats(_ count: Int) -> UnsafeMutablePointer<Float> { bytes(4 * count).bindMemory(to: Float.self, capacity: count) }
    public func bf16(_ count: Int) -> UnsafeMutablePointer<BFloat16> { bytes(2 * count).bindMemory(to: BFloat16.self, capacity: count) }
}
