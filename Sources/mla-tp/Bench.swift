import ArgumentParser
import Foundation
import MLA
import SwiftMPI
import TensorCore
import TensorParallel

/// Which forwards `bench` times.
enum BenchPhase: String, ExpressibleByArgument, CaseIterable, Codable {
    case prefill, decode, both
}

/// `mla-tp bench`: times the forward on every rank and holds each part against a reference
/// measured in the same run: GEMM FLOP/s against `cblas_sgemm` on the layer's largest weight,
/// the allreduce against a plain `MPI_Allreduce` of the same bytes, decode weight traffic
/// against `memcpy` bandwidth, and resident memory against the rank's weights and activations.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time the forward per rank: compute vs allreduce, GEMM rate vs sgemm, allreduce vs raw MPI, memory, decode bandwidth.",
        discussion: """
            mpirun -n K mla-tp bench [--preset NAME | --model DIR] [--tokens T] [--phase prefill|decode|both] \
            [--repeat N] [--decode naive|absorbed] [--batch B] [--json]

            Each phase runs --warmup untimed forwards, one more untimed forward around which memory is read, \
            then --repeat timed ones, each after a barrier, and reports their median, min and max per rank. \
            Right after each timed forward every rank runs the references together: cblas_sgemm on the \
            layer's largest hidden-wide weight (prefill), memcpy (decode) and a raw MPI_Allreduce of the \
            same bytes; ratios are medians of these pairs. Prefill is one sequence of T tokens; decode \
            first prefills B sequences of T tokens into a KV cache, then times steps of one new token per \
            sequence. The allreduce is preceded by a barrier whose time is reported apart as "wait" (load \
            imbalance), so that "allreduce" is the reduction itself. Speeds are what this machine did during \
            this run: check the load average and the cpu column the report prints.
            """)

    @OptionGroup var model: ModelOptions
    @OptionGroup var reduce: CollectiveOptions

    @Option(help: "Prefill tokens (one sequence); for decode, the tokens cached per sequence before the timed steps.")
    var tokens = 256

    @Option(help: "Which forwards to time: prefill, decode or both.")
    var phase: BenchPhase = .prefill

    @Option(name: .customLong("repeat"), help: "Timed forwards (decode: steps) per phase.")
    var repeats = 5

    @Option(help: "Untimed forwards before the timed ones.")
    var warmup = 1

    @Option(help: "Decode path: naive (expand the cache through kv_b_proj) or absorbed.")
    var decode: DecodePath = .absorbed

    @Option(help: "Sequences decoding together, one new token each per step.")
    var batch = 1

    @Option(help: "MiB copied by the memcpy bandwidth probe (decode).")
    var copyMib = 256

    @Flag(help: "Print the report as one JSON document.")
    var json = false

    @Flag(help: "Print one markdown table row per phase (with the header), as docs/performance.md shows them.")
    var markdown = false

    @Option(help: "Render a report saved with --json (as text, or --markdown) instead of running; needs no mpirun.")
    var fromJson: String?

    func validate() throws {
        guard tokens >= 1 else { throw ValidationError("--tokens \(tokens) must be at least 1") }
        guard repeats >= 1 else { throw ValidationError("--repeat \(repeats) must be at least 1") }
        guard warmup >= 0 else { throw ValidationError("--warmup \(warmup) must be ≥ 0") }
        guard batch >= 1 else { throw ValidationError("--batch \(batch) must be at least 1") }
        guard copyMib >= 1 else { throw ValidationError("--copy-mib \(copyMib) must be at least 1") }
        guard !(json && markdown) else { throw ValidationError("--json and --markdown cannot be combined — pick one") }
    }

    func run() throws {
        if let fromJson {
            guard let data = FileManager.default.contents(atPath: fromJson) else {
                throw CLIError.input("cannot read \(fromJson) — pass a file written by `mla-tp bench --json`")
            }
            let report: BenchReport
            let decoder = JSONDecoder()
            decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
            do { report = try decoder.decode(BenchReport.self, from: data) } catch {
                throw CLIError.input("\(fromJson) is not a bench report (\(error)) — pass a file written by `mla-tp bench --json`")
            }
            RankOutputShim.out(json ? try report.json() : markdown ? report.markdown() : report.text())
            return
        }
        let world = try Runtime.start()
        let load = loadAverage()
        let runtimeMemory = ProcessMemory.current()
        let tp = world.size, rank = world.rank
        let (config, modelName) = try model.loadConfig()
        try config.validate(tp: tp)
        let phases: [BenchPhase] = phase == .both ? [.prefill, .decode] : [phase]
        let largest = phases.contains(.decode) ? batch * tokens : tokens
        try TokenBudget.check(tokens: largest, config: config, tp: tp)

        let source = try model.weightSource(for: config)
        let attention = try MLAAttention(config: config, shard: Shard(rank: rank, size: tp),
                                         gateLayout: model.gate, source: source)
        let loadedMemory = ProcessMemory.current()
        let collectives = reduce.collectives(world)
        collectives.separateWait = true
        let context = BenchContext(world: world, config: config, attention: attention, collectives: collectives,
                                   gate: model.gate, seed: model.seed)

        var mine = BenchRankResult(rank: rank, blasThreads: BLAS.threads, weightBytes: attention.weightBytes,
                                   runtimeAnonymousBytes: runtimeMemory.anonymousBytes,
                                   loadedAnonymousBytes: loadedMemory.anonymousBytes)
        for p in phases {
            switch p {
            case .prefill: mine.prefill = try context.prefill(tokens: tokens, warmup: warmup, repeats: repeats)
            case .decode:
                mine.decode = try context.decode(context: tokens, sequences: batch, path: decode, warmup: warmup,
                                                 repeats: repeats, copyBytes: copyMib << 20)
            case .both: break
            }
        }
        let ranks = try gatherCodable(mine, world: world)
        if rank == 0 {
            let report = BenchReport(model: modelName, config: config, tp: tp, gate: model.gate, loadAverage: load,
                                     cpus: ProcessInfo.processInfo.activeProcessorCount, tokens: tokens, repeats: repeats,
                                     warmup: warmup, decodePath: phases.contains(.decode) ? decode : nil,
                                     batch: phases.contains(.decode) ? batch : nil, ranks: ranks)
            RankOutput(rank: rank).printRoot(json ? try report.json() : markdown ? report.markdown() : report.text())
        }
        try Environment.finalize()
    }
}

/// What one phase measured on one rank.
struct BenchPhaseResult: Codable {
    /// New tokens per forward (prefill: T; decode: one per sequence).
    var tokensPerForward: Int
    var sequences: Int
    /// Decode: cached tokens per sequence before the first and the last timed step.
    var contextFirst: Int?
    var contextLast: Int?

    /// Per forward: the whole forward, its parts.
    var totalSeconds: BenchStats
    var computeSeconds: BenchStats
    var allReduceSeconds: BenchStats
    var allReduceWaitSeconds: BenchStats
    /// CPU time of the calling thread per forward (BLAS runs on it with one thread; MPI's
    /// busy-wait counts too). Well below `totalSeconds` means the core was lent to other work.
    var cpuSeconds: BenchStats

    /// FLOPs the last timed forward counted while executing, and the plan's count for it.
    var flops: Int
    var projectionFlops: Int
    var attentionFlops: Int
    var planFlops: Int
    /// Counted FLOPs over the median forward time.
    var flopsPerSecond: Double

    /// Prefill: `cblas_sgemm` of `x [m, k] · Wᵀ` on the layer's largest hidden-wide local weight
    /// `W [n, k]`, shape `[m, n, k]`, one right after each timed forward; its rate over the median;
    /// and the median over forwards of (forward's FLOP/s ÷ the following sgemm's FLOP/s).
    var sgemmShape: [Int]?
    var sgemmWeightOrder: WeightOrder?
    var sgemmSeconds: BenchStats?
    var sgemmFlopsPerSecond: Double?
    var gemmEfficiency: Double?

    /// The forward's allreduce payload; a plain MPI_Allreduce of the same bytes right after each
    /// timed forward (the median of a few); the median over forwards of their ratio.
    var allReduceBytes: Int
    var rawAllReduceSeconds: BenchStats?
    var allReduceRatio: Double?
    /// The same raw MPI_Allreduce right after reading 64 MiB (caches evicted, as in the forward,
    /// whose allreduce follows streaming the o_proj weight), and the forward's ratio to it.
    var rawColdAllReduceSeconds: BenchStats?
    /// How the forward's allreduce was done (`Collectives.AllReducePath`).
    var allReducePath: String?
    var allReduceColdRatio: Double?

    /// Decode: weight bytes each step streams (every local weight once), per decoded token, and
    /// the rate over the median step; a memcpy right after each timed step, its bandwidth counting
    /// bytes read + written; the median over steps of (weight rate ÷ the following copy's rate).
    var weightBytesPerStep: Int?
    var weightBytesPerToken: Int?
    var weightBytesPerSecond: Double?
    var copySeconds: BenchStats?
    var copyBytesPerSecond: Double?
    var bandwidthEfficiency: Double?
    /// The same ratio over the rank's own busy time (the step less its wait for slower ranks at
    /// the barrier before the reduce): how fast this rank streamed, apart from load imbalance.
    var busyBandwidthEfficiency: Double?
    var cacheBytes: Int?

    /// Memory around the timed forwards.
    var memory: BenchMemory
}

extension BenchPhaseResult {
    /// The raw allreduce references (columns 1 and 2 of the paired samples) and the ratios.
    mutating func addRawAllReduce(_ timed: BenchContext.Timed) {
        let hot = BenchStats(timed.references.map { $0[1] }), cold = BenchStats(timed.references.map { $0[2] })
        rawAllReduceSeconds = hot
        rawColdAllReduceSeconds = cold
        allReduceRatio = BenchStats(zip(allReduceSeconds.samples, hot.samples).map { $0 / max($1, 1e-12) }).median
        allReduceColdRatio = BenchStats(zip(allReduceSeconds.samples, cold.samples).map { $0 / max($1, 1e-12) }).median
    }
}

/// A rank's memory for one phase (bytes).
struct BenchMemory: Codable {
    var anonymousBytes: Int
    var pssBytes: Int
    var rssBytes: Int
    /// RSS before the timed forwards, and its peak during them (VmHWM after a reset).
    var rssBeforeTimedBytes: Int
    var peakDuringTimedBytes: Int
    /// Whether the kernel let the peak be reset (else the peak is since the process started).
    var peakWasReset: Bool
    /// Weights (shard + replicated), activations and cache this phase needs, and
    /// the budget `1.1 × weights + activations + cache`.
    var weightBytes: Int
    var replicatedBytes: Int
    var shardBytes: Int
    var activationBytes: Int
    var budgetBytes: Int
    /// The smallest local weight matrix: a forward must never allocate this much.
    var smallestWeightBytes: Int
    /// Every weight of the unsharded layer (what a rank would hold if it held every shard).
    var fullLayerBytes: Int
}

/// Everything one rank measured.
struct BenchRankResult: Codable {
    var rank: Int
    var blasThreads: Int
    var weightBytes: Int
    /// Anonymous RSS after MPI started (the runtime's own), and after the weights were built.
    var runtimeAnonymousBytes: Int
    var loadedAnonymousBytes: Int
    var prefill: BenchPhaseResult?
    var decode: BenchPhaseResult?
}

/// The pieces every phase uses.
struct BenchContext {
    let world: Communicator
    let config: MLAConfig
    let attention: MLAAttention
    let collectives: Collectives
    let gate: GateLayout
    let seed: UInt64

    var tp: Int { world.size }

    /// Per timed forward: its wall time and parts, its CPU time, and the reference measurements
    /// taken right after it (paired samples, so that slow drifts of the machine cancel in ratios).
    struct Timed {
        var total: [Double] = [], compute: [Double] = [], reduce: [Double] = [], wait: [Double] = [], cpu: [Double] = []
        var references: [[Double]] = []
    }

    /// `warmup` untimed forwards; then one more to read memory around (the peak reset before it);
    /// then `repeats` timed forwards, each after a barrier and each followed by `reference()`.
    func time(warmup: Int, repeats: Int, activations: () -> Int, _ forward: () throws -> Void,
              reference: () throws -> [Double]) throws -> (Timed, BenchMemory) {
        for _ in 0..<warmup {
            try world.barrier()
            try forward()
        }
        try world.barrier()
        let rssBefore = ProcessMemory.current().rssBytes
        let reset = ResidentPeak.reset()
        try forward()
        let memory = memory(rssBefore: rssBefore, peakReset: reset, activations: activations())
        var t = Timed()
        for _ in 0..<repeats {
            collectives.resetCounters()
            try world.barrier()
            let cpu0 = threadCPUTime()
            try forward()
            t.cpu.append(threadCPUTime() - cpu0)
            let total = attention.counters.seconds
            t.total.append(total)
            t.reduce.append(collectives.seconds)
            t.wait.append(collectives.waitSeconds)
            t.compute.append(total - collectives.seconds - collectives.waitSeconds)
            t.references.append(try reference())
        }
        return (t, memory)
    }

    /// Seconds of `body` after a barrier (every rank starts it together).
    func timedAfterBarrier(_ body: () throws -> Void) throws -> Double {
        try world.barrier()
        let t0 = Environment.wallTime()
        try body()
        return Environment.wallTime() - t0
    }

    /// The median of `count` runs of `body`, each after a barrier.
    func medianAfterBarrier(_ count: Int, _ body: () throws -> Void) throws -> Double {
        BenchStats(try (0..<count).map { _ in try timedAfterBarrier(body) }).median
    }

    /// A raw MPI_Allreduce (f32 sum, in place) of `bytes`: the median of `repeats` back to back,
    /// each after a barrier ("hot"), then one after reading a buffer twice the size of the last-level
    /// cache, as the forward's allreduce follows streaming its weights ("cold"). (0, 0) at tp = 1.
    func rawAllReduce(bytes: Int, repeats: Int, buffers: ProbeBuffers) throws -> (hot: Double, cold: Double) {
        guard tp > 1 else { return (0, 0) }
        let (b, fresh) = buffers.floats("allreduce", count: bytes / 4)
        if fresh { try world.allReduce(b, .sum) }                                   // warm, untimed
        let hot = try medianAfterBarrier(repeats) { try world.allReduce(b, .sum) }
        let evict = buffers.bytes("eviction", count: 64 << 20)
        BenchProbe.keep(evict.pointer, bytes: evict.count, stride: 64)
        let cold = try timedAfterBarrier { try world.allReduce(b, .sum) }
        for j in b.indices { b[j] = 1 }                                             // keep the values finite, untimed
        return (hot, cold)
    }

    func memory(rssBefore: Int, peakReset: Bool, activations: Int) -> BenchMemory {
        let now = ProcessMemory.current()
        let plan = ShardingPlan(config: config, tp: tp, gate: gate)
        let full = ShardingPlan(config: config, tp: 1, gate: .column)
        let smallest = plan.weights.filter { $0.localShape.count == 2 }.map(\.bytesPerRank).min() ?? 0
        let weights = attention.weightBytes
        return BenchMemory(anonymousBytes: now.anonymousBytes, pssBytes: now.pssBytes, rssBytes: now.rssBytes,
                           rssBeforeTimedBytes: rssBefore, peakDuringTimedBytes: ResidentPeak.peakBytes(), peakWasReset: peakReset,
                           weightBytes: weights, replicatedBytes: plan.replicatedBytes, shardBytes: plan.shardedBytes,
                           activationBytes: activations, budgetBytes: Int(1.1 * Double(weights)) + activations,
                           smallestWeightBytes: smallest, fullLayerBytes: full.bytesPerRank)
    }

    /// The layer's largest local weight whose input is the hidden state (the gate, or q_a), as the
    /// layer keeps it: its storage is shared with the layer (no copy), with its order and `[out, in]`.
    func largestHiddenWideWeight() -> (weight: Matrix, order: WeightOrder, out: Int, in: Int)? {
        attention.layers.filter { $0.layout != .row && $0.localIn == config.hiddenSize }
            .max { $0.localOut < $1.localOut }
            .map { ($0.weight, $0.order, $0.localOut, $0.localIn) }
    }

    func prefill(tokens T: Int, warmup: Int, repeats: Int) throws -> BenchPhaseResult {
        let hidden = config.hiddenSize
        let x = try seededInput(tokens: T, hidden: hidden, seed: seed)
        let batch = try Batch(sequenceLengths: [T])
        var out = Matrix(rows: T, cols: hidden)
        let plan = FlopModel.prefill(config: config, tp: tp, gate: gate, sequenceLengths: [T])
        let bytes = ShardingPlan.allReduceBytes(tokens: T, config: config)

        // References, paired with each timed forward: cblas_sgemm of x · Wᵀ on the layer's largest
        // hidden-wide weight (its own storage: nothing weight-sized is allocated), and a raw
        // MPI_Allreduce of the forward's bytes (the median of 3), hot and after evicting the caches.
        let w = largestHiddenWideWeight()
        let buffers = ProbeBuffers()
        func sgemm(_ c: UnsafeMutablePointer<Float>) {
            guard let w else { return }
            x.storage.withUnsafeBufferPointer { xp in w.weight.storage.withUnsafeBufferPointer { wp in
                // The product the forward runs: x·Wᵀ on [out, in], or x·W on [in, out].
                Gemm.run(transB: w.order == .outIn, m: T, n: w.out, k: w.in, a: xp.baseAddress!, lda: w.in,
                         b: wp.baseAddress!, ldb: w.order == .outIn ? w.in : w.out, c: c, ldc: w.out)
            } }
        }
        let (timed, memory) = try time(warmup: warmup, repeats: repeats, activations: {
            Int(TokenBudget.activationBytes(tokens: T, config: config, tp: tp))
        }, {
            try attention.forward(x, batch: batch, collectives: collectives, into: &out)
        }, reference: {
            var s = 0.0
            if let w {
                let (c, fresh) = buffers.floats("product", count: T * w.out)
                if fresh { sgemm(c.baseAddress!) }                                 // warm, untimed
                s = try timedAfterBarrier { sgemm(c.baseAddress!) }
            }
            let (hot, cold) = try rawAllReduce(bytes: bytes, repeats: 3, buffers: buffers)
            return [s, hot, cold]
        })
        let counters = attention.counters
        let total = BenchStats(timed.total)
        var result = BenchPhaseResult(
            tokensPerForward: T, sequences: 1, totalSeconds: total, computeSeconds: BenchStats(timed.compute),
            allReduceSeconds: BenchStats(timed.reduce), allReduceWaitSeconds: BenchStats(timed.wait), cpuSeconds: BenchStats(timed.cpu),
            flops: counters.totalFlops, projectionFlops: counters.projectionFlops, attentionFlops: counters.attentionFlops,
            planFlops: plan.totalFlops, flopsPerSecond: Double(counters.totalFlops) / max(total.median, 1e-12),
            allReduceBytes: bytes, memory: memory)
        if let w {
            let flops = Double(Gemm.flops(m: T, n: w.out, k: w.in))
            let s = BenchStats(timed.references.map { $0[0] })
            result.sgemmShape = [T, w.out, w.in]
            result.sgemmWeightOrder = w.order
            result.sgemmSeconds = s
            result.sgemmFlopsPerSecond = flops / max(s.median, 1e-12)
            // Per timed forward: its GEMM rate over the rate of the sgemm right after it.
            result.gemmEfficiency = BenchStats(zip(timed.total, s.samples).map { (fwd, ref) in
                (Double(counters.totalFlops) / fwd) / (flops / max(ref, 1e-12)) }).median
        }
        if tp > 1 { result.addRawAllReduce(timed); result.allReducePath = collectives.lastPath.rawValue }
        return result
    }

    func decode(context C: Int, sequences B: Int, path: DecodePath, warmup: Int, repeats: Int, copyBytes: Int) throws -> BenchPhaseResult {
        let hidden = config.hiddenSize
        let cache = KVCache(config: config, sequences: B)
        let prompt = try Batch(sequenceLengths: Array(repeating: C, count: B))
        let xPrompt = try seededInput(tokens: B * C, hidden: hidden, seed: seed)
        _ = try attention.prefill(xPrompt, batch: prompt, cache: cache, collectives: collectives)
        let x = try seededInput(tokens: B, hidden: hidden, seed: seed &+ 1)
        let bytes = ShardingPlan.allReduceBytes(tokens: B, config: config)
        let hl = config.numAttentionHeads / tp
        var firstContext = 0, lastContexts: [Int] = []
        var steps = 0

        // References, paired with each timed step: a memcpy of copyBytes, and a raw MPI_Allreduce
        // of the step's bytes (the median of 5), hot and after evicting the caches.
        let buffers = ProbeBuffers()
        let (timed, memory) = try time(warmup: warmup, repeats: repeats, activations: {
            // The workspace grew to the prompt's prefill and never shrinks; the cache; and on the
            // naive path one sequence's expanded keys and values.
            var a = Int(TokenBudget.activationBytes(tokens: B * C, config: config, tp: tp)) + cache.bytes
            if path == .naive { a += 4 * (cache.lengths.max() ?? 0) * hl * (config.qkNopeHeadDim + config.vHeadDim) }
            return a
        }, {
            if steps == warmup + 1 { firstContext = cache.lengths[0] }
            lastContexts = cache.lengths
            _ = try attention.decode(x, cache: cache, path: path, collectives: collectives)
            steps += 1
        }, reference: {
            let src = buffers.bytes("copy source", count: copyBytes).pointer
            let dst = buffers.bytes("copy destination", count: copyBytes).pointer
            let c = try timedAfterBarrier { _ = memcpy(dst, src, copyBytes) }
            BenchProbe.keep(dst, bytes: copyBytes)
            let (hot, cold) = try rawAllReduce(bytes: bytes, repeats: 5, buffers: buffers)
            return [c, hot, cold]
        })
        let counters = attention.counters
        let plan = FlopModel.decode(config: config, tp: tp, gate: gate, contexts: lastContexts, path: path)
        let total = BenchStats(timed.total)
        let weights = attention.weightBytes
        let copies = BenchStats(timed.references.map { $0[0] })
        var result = BenchPhaseResult(
            tokensPerForward: B, sequences: B, contextFirst: firstContext, contextLast: lastContexts.first,
            totalSeconds: total, computeSeconds: BenchStats(timed.compute),
            allReduceSeconds: BenchStats(timed.reduce), allReduceWaitSeconds: BenchStats(timed.wait), cpuSeconds: BenchStats(timed.cpu),
            flops: counters.totalFlops, projectionFlops: counters.projectionFlops, attentionFlops: counters.attentionFlops,
            planFlops: plan.totalFlops, flopsPerSecond: Double(counters.totalFlops) / max(total.median, 1e-12),
            allReduceBytes: bytes, weightBytesPerStep: weights, weightBytesPerToken: weights / B,
            weightBytesPerSecond: Double(weights) / max(total.median, 1e-12), cacheBytes: cache.bytes, memory: memory)
        result.copySeconds = copies
        result.copyBytesPerSecond = 2 * Double(copyBytes) / max(copies.median, 1e-12)
        let copyRates = copies.samples.map { 2 * Double(copyBytes) / max($0, 1e-12) }
        result.bandwidthEfficiency = BenchStats(zip(timed.total, copyRates).map { Double(weights) / $0 / $1 }).median
        result.busyBandwidthEfficiency = BenchStats(zip(zip(timed.total, timed.wait), copyRates).map { pair, copy in
            Double(weights) / max(pair.0 - pair.1, 1e-12) / copy }).median
        if tp > 1 { result.addRawAllReduce(timed); result.allReducePath = collectives.lastPath.rawValue }
        return result
    }
}
