import Foundation
import SwiftMPI
import TensorCore
import TensorParallel

/// The reference measurements a forward is held against, and the rates a projection is built
/// from: one API for `bench` (one sample right after each timed forward, paired with it) and the
/// rate probe (best of many). Every measurement starts after a barrier, so the ranks run it
/// together, as they run a forward.
///
/// Buffers are allocated and filled (their pages faulted in) at first use and freed with the
/// probe, so they never count in memory read before the first reference runs.
public final class Probe {
    public let world: Communicator
    private var blocks: [String: (pointer: UnsafeMutableRawPointer, count: Int)] = [:]

    public init(world: Communicator) { self.world = world }

    deinit { for b in blocks.values { b.pointer.deallocate() } }

    /// Seconds of `body`, started after a barrier.
    public func afterBarrier(_ body: () throws -> Void) throws -> Double {
        try world.barrier()
        return try Clock.seconds(body)
    }

    /// `repeats` timings of `body`, each after a barrier.
    public func samples(_ repeats: Int, _ body: () throws -> Void) throws -> Samples {
        Samples(try (0..<repeats).map { _ in try afterBarrier(body) })
    }

    /// `repeats` timings of `x·Wᵀ` (or `x·W`) as `gemm` describes it; one untimed warm-up first.
    public func sgemm(_ gemm: GemmProbe, repeats: Int) throws -> Samples {
        let (c, fresh) = floats("product", count: gemm.m * gemm.n)
        if fresh { gemm.run(into: c.baseAddress!) }
        return try samples(repeats) { gemm.run(into: c.baseAddress!) }
    }

    /// The kernel `gemm` runs on (one untimed product).
    public func kernel(of gemm: GemmProbe) -> GemmKernel {
        gemm.run(into: floats("product", count: gemm.m * gemm.n).0.baseAddress!)
    }

    /// `repeats` timings of a `memcpy` of `bytes` between two buffers; its bandwidth counts the
    /// bytes read and written (STREAM's convention): `2 · bytes / seconds`.
    public func copy(bytes: Int, repeats: Int) throws -> Samples {
        let fresh = blocks["copy destination"] == nil
        let src = block("copy source", bytes: bytes).pointer, dst = block("copy destination", bytes: bytes).pointer
        if fresh { memcpy(dst, src, bytes) }
        let s = try samples(repeats) { memcpy(dst, src, bytes) }
        Probe.keep(dst, bytes: bytes)
        return s
    }

    /// `repeats` timings of an in-place f32 sum `MPI_Allreduce` of `bytes`, each after a barrier;
    /// with `batch` > 1 each sample is the mean of that many calls back to back (a latency probe).
    /// One untimed call first. Zeros at one rank.
    public func allReduce(bytes: Int, repeats: Int, batch: Int = 1) throws -> Samples {
        guard world.size > 1 else { return Samples(Array(repeating: 0, count: repeats)) }
        let (b, fresh) = floats("allreduce \(bytes)", count: max(bytes / 4, 1))
        if fresh { try world.allReduce(b, .sum) }
        let s = try samples(repeats) { for _ in 0..<batch { try world.allReduce(b, .sum) } }
        b.update(repeating: 1)                                                    // keep the values finite, untimed
        return Samples(s.samples.map { $0 / Double(batch) })
    }

    /// Seconds of `body` after reading 64 MiB (the caches evicted, untimed) and a barrier.
    public func afterEviction(_ body: () throws -> Void) throws -> Double {
        let evict = block("eviction", bytes: 64 << 20)
        Probe.keep(evict.pointer, bytes: evict.count, stride: 64)
        return try afterBarrier(body)
    }

    /// One such allreduce right after reading 64 MiB (the caches evicted), as the forward's
    /// allreduce follows streaming its weights. 0 at one rank.
    public func allReduceAfterEviction(bytes: Int) throws -> Double {
        guard world.size > 1 else { return 0 }
        let (b, _) = floats("allreduce \(bytes)", count: max(bytes / 4, 1))
        let evict = block("eviction", bytes: 64 << 20)
        Probe.keep(evict.pointer, bytes: evict.count, stride: 64)
        let t = try afterBarrier { try world.allReduce(b, .sum) }
        b.update(repeating: 1)
        return t
    }

    /// `bytes` named `name`, filled with a byte pattern at first use.
    private func block(_ name: String, bytes: Int) -> (pointer: UnsafeMutableRawPointer, count: Int) {
        if let b = blocks[name] { return b }
        let p = UnsafeMutableRawPointer.allocate(byteCount: max(bytes, 1), alignment: 64)
        memset(p, 1, bytes)
        blocks[name] = (p, bytes)
        return (p, bytes)
    }

    /// `count` floats named `name`, filled with 1 at first use; `fresh` on that use.
    private func floats(_ name: String, count: Int) -> (UnsafeMutableBufferPointer<Float>, fresh: Bool) {
        let fresh = blocks[name] == nil
        let f = block(name, bytes: 4 * count).pointer.bindMemory(to: Float.self, capacity: count)
        if fresh { f.update(repeating: 1, count: count) }
        return (UnsafeMutableBufferPointer(start: f, count: count), fresh)
    }

    /// Reads one byte every `stride` bytes into a sink the optimizer must keep: after a timed
    /// copy (one per page), so the copy cannot be dropped, or every cache line, to evict the caches.
    public static func keep(_ p: UnsafeMutableRawPointer, bytes: Int, stride step: Int = 4096) {
        let d = p.assumingMemoryBound(to: UInt8.self)
        var sum = 0
        for i in stride(from: 0, to: bytes, by: step) { sum &+= Int(d[i]) }
        sink &+= sum
    }

    nonisolated(unsafe) static var sink = 0
}

/// A GEMM of a projection's shape, as the layer runs it: `x [m, k] · Wᵀ` with `W [n, k]`
/// (`.outIn`) or `x · W` with `W [k, n]` (`.inOut`), through the kernel layer's `route`.
/// Matrices share storage (no copy): the bench passes the layer's own weight.
public struct GemmProbe {
    public var x: Matrix
    public var weight: AnyMatrix
    public var order: WeightOrder
    /// `.automatic` runs the product on the kernel the layer's own product takes; `.oneDNN` asks
    /// for oneDNN's matmul (bench's bf16 reference).
    public var route: GemmRoute
    /// Run on the fixed-order kernels (`FixedOrderGemm`, the invariant mode's) instead.
    public var fixedOrder = false

    public init(x: Matrix, weight: AnyMatrix, order: WeightOrder, route: GemmRoute = .automatic) {
        self.x = x
        self.weight = weight
        self.order = order
        self.route = route
    }

    /// A probe of shape `[m, n, k]` over constant f32 operands, `W` kept `[in, out]` as the layer
    /// keeps its forward-only f32 projections.
    public init(m: Int, n: Int, k: Int) {
        self.init(x: Matrix(rows: m, cols: k, repeating: 0.5), weight: .f32(Matrix(rows: k, cols: n, repeating: 0.25)), order: .inOut)
    }

    public var m: Int { x.rows }
    public var k: Int { x.cols }
    public var n: Int { order == .outIn ? weight.rows : weight.cols }
    public var flops: Int { get throws { try Gemm.flops(m: m, n: n, k: k) } }

    /// `C [m, n] = x · op(W)` into `c`; returns the kernel that ran.
    @discardableResult
    public func run(into c: UnsafeMutablePointer<Float>) -> GemmKernel {
        let (m, n, k, transposed, route) = (self.m, self.n, self.k, order == .outIn, self.route)
        if fixedOrder {
            return x.storage.withUnsafeBufferPointer { xp in weight.withGemmSource { w in
                if transposed { FixedOrderGemm.nt(m: m, n: n, k: k, a: xp.baseAddress!, lda: k, b: w, ldb: k, c: c, ldc: n) }
                else { FixedOrderGemm.nn(m: m, n: n, k: k, a: xp.baseAddress!, lda: k, b: w, ldb: n, c: c, ldc: n) }
                return m == 0 || n == 0 ? .empty : .fixedOrder(FixedOrderGemm.isa)
            } }
        }
        return x.storage.withUnsafeBufferPointer { xp in weight.withGemmSource { w in
            Gemm.run(transB: transposed, m: m, n: n, k: k, a: .f32(xp.baseAddress!), lda: k,
                     b: w, ldb: transposed ? k : n, c: .f32(c), ldc: n, route: route)
        } }
    }
}
