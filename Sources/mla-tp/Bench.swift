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

            Each phase runs --warmup untimed forwards, then --repeat timed ones, each after a barrier, and \
            reports their median, min and max per rank. Prefill is one sequence of T tokens; decode first \
            prefills B sequences of T tokens into a KV cache, then times steps of one new token per sequence. \
            The allreduce is preceded by a barrier whose time is reported apart as "wait" (load imbalance), \
            so that "allreduce" is the reduction itself. Speeds are what this machine did during this run: \
            check the load average the report prints.
            """)

    @OptionGroup var model: ModelOptions

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
        let collectives = Collectives(world)
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

    /// FLOPs the last timed forward counted while executing, and the plan's count for it.
    var flops: Int
    var projectionFlops: Int
    var attentionFlops: Int
    var planFlops: Int
    /// Counted FLOPs over the median forward time.
    var flopsPerSecond: Double

    /// Prefill: `cblas_sgemm` on the layer's largest local weight, `[m, n, k]`, in the same run.
    var sgemmShape: [Int]?
    var sgemmFlopsPerSecond: Double?

    /// The forward's allreduce payload and a plain MPI_Allreduce of the same bytes.
    var allReduceBytes: Int
    var rawAllReduceSeconds: BenchStats?

    /// Decode: weight bytes each step streams (every local weight once), per decoded token,
    /// and the rate over the median step; memcpy bandwidth in the same run.
    var weightBytesPerStep: Int?
    var weightBytesPerToken: Int?
    var weightBytesPerSecond: Double?
    var copyBytesPerSecond: Double?
    var cacheBytes: Int?

    /// Memory around the timed forwards.
    var memory: BenchMemory
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

    /// Runs `forward` `warmup` times, resets the memory peak, then `repeats` timed times, each after a barrier.
    func time(warmup: Int, repeats: Int, _ forward: () throws -> Void)
        throws -> (total: [Double], compute: [Double], reduce: [Double], wait: [Double], rssBefore: Int, peakReset: Bool) {
        for _ in 0..<warmup {
            try world.barrier()
            try forward()
        }
        let rssBefore = ProcessMemory.current().rssBytes
        let reset = ResidentPeak.reset()
        var total: [Double] = [], compute: [Double] = [], reduce: [Double] = [], wait: [Double] = []
        for _ in 0..<repeats {
            collectives.resetCounters()
            try world.barrier()
            try forward()
            let t = attention.counters.seconds
            total.append(t)
            reduce.append(collectives.seconds)
            wait.append(collectives.waitSeconds)
            compute.append(t - collectives.seconds - collectives.waitSeconds)
        }
        return (total, compute, reduce, wait, rssBefore, reset)
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

    /// The layer's largest local weight, `[n, k]` with k = hidden (gate, else o_proj's transpose is not
    /// hidden-wide, so q_a/kv_a), as raw storage shared with the layer (no copy).
    func largestHiddenWideWeight() -> (values: [Float], rows: Int, cols: Int)? {
        attention.namedTensors.filter { $0.shape.count == 2 && $0.shape[1] == config.hiddenSize }
            .max { $0.shape[0] < $1.shape[0] }
            .map { ($0.values, $0.shape[0], $0.shape[1]) }
    }

    func prefill(tokens T: Int, warmup: Int, repeats: Int) throws -> BenchPhaseResult {
        let hidden = config.hiddenSize
        let x = try seededInput(tokens: T, hidden: hidden, seed: seed)
        let batch = try Batch(sequenceLengths: [T])
        var out = Matrix(rows: T, cols: hidden)
        let timed = try time(warmup: warmup, repeats: repeats) {
            try attention.forward(x, batch: batch, collectives: collectives, into: &out)
        }
        let activations = Int(TokenBudget.activationBytes(tokens: T, config: config, tp: tp))
        let memory = memory(rssBefore: timed.rssBefore, peakReset: timed.peakReset, activations: activations)
        let counters = attention.counters
        let plan = FlopModel.prefill(config: config, tp: tp, gate: gate, sequenceLengths: [T])

        // References, after the memory reading: sgemm on the largest hidden-wide weight with this x.
        var sgemmShape: [Int]?, sgemmRate: Double?
        if let w = largestHiddenWideWeight() {
            let flops = Gemm.flops(m: T, n: w.rows, k: w.cols)
            let reps = max(3, min(repeats, Int(2e10 / Double(max(flops, 1)))))     // ≈ 0.2 s at 100 GFLOP/s, at least 3
            let r = try x.storage.withUnsafeBufferPointer { xp in
                try w.values.withUnsafeBufferPointer { wp in
                    try BenchProbe.sgemm(x: xp.baseAddress!, weight: wp.baseAddress!, m: T, n: w.rows, k: w.cols,
                                         repeats: reps, world: world)
                }
            }
            sgemmShape = [T, w.rows, w.cols]
            sgemmRate = r.flopsPerSecond
        }
        let bytes = ShardingPlan.allReduceBytes(tokens: T, config: config)
        let raw = tp > 1 ? try BenchProbe.allReduce(count: bytes / 4, repeats: max(20, repeats), world: world) : nil
        let total = BenchStats(timed.total)
        return BenchPhaseResult(
            tokensPerForward: T, sequences: 1, totalSeconds: total, computeSeconds: BenchStats(timed.compute),
            allReduceSeconds: BenchStats(timed.reduce), allReduceWaitSeconds: BenchStats(timed.wait),
            flops: counters.totalFlops, projectionFlops: counters.projectionFlops, attentionFlops: counters.attentionFlops,
            planFlops: plan.totalFlops, flopsPerSecond: Double(counters.totalFlops) / max(total.median, 1e-12),
            sgemmShape: sgemmShape, sgemmFlopsPerSecond: sgemmRate, allReduceBytes: bytes, rawAllReduceSeconds: raw,
            memory: memory)
    }

    func decode(context C: Int, sequences B: Int, path: DecodePath, warmup: Int, repeats: Int, copyBytes: Int) throws -> BenchPhaseResult {
        let hidden = config.hiddenSize
        let cache = KVCache(config: config, sequences: B)
        let prompt = try Batch(sequenceLengths: Array(repeating: C, count: B))
        let xPrompt = try seededInput(tokens: B * C, hidden: hidden, seed: seed)
        _ = try attention.prefill(xPrompt, batch: prompt, cache: cache, collectives: collectives)
        let x = try seededInput(tokens: B, hidden: hidden, seed: seed &+ 1)
        var firstContext = 0, lastContexts: [Int] = []
        var step = 0
        let timed = try time(warmup: warmup, repeats: repeats) {
            if step == warmup { firstContext = cache.lengths[0] }
            lastContexts = cache.lengths
            _ = try attention.decode(x, cache: cache, path: path, collectives: collectives)
            step += 1
        }
        let counters = attention.counters
        let plan = FlopModel.decode(config: config, tp: tp, gate: gate, contexts: lastContexts, path: path)
        // Activations: the workspace grew to the prompt's prefill and never shrinks; the cache; and on the
        // naive path one sequence's expanded keys and values.
        let hl = config.numAttentionHeads / tp
        var activations = Int(TokenBudget.activationBytes(tokens: B * C, config: config, tp: tp)) + cache.bytes
        if path == .naive { activations += 4 * (cache.lengths.max() ?? 0) * hl * (config.qkNopeHeadDim + config.vHeadDim) }
        let memory = memory(rssBefore: timed.rssBefore, peakReset: timed.peakReset, activations: activations)

        let copy = try BenchProbe.copyBandwidth(bytes: copyBytes, repeats: 5, world: world)
        let bytes = ShardingPlan.allReduceBytes(tokens: B, config: config)
        let raw = tp > 1 ? try BenchProbe.allReduce(count: bytes / 4, repeats: max(50, repeats), world: world) : nil
        let total = BenchStats(timed.total)
        let weights = attention.weightBytes
        return BenchPhaseResult(
            tokensPerForward: B, sequences: B, contextFirst: firstContext, contextLast: lastContexts.first,
            totalSeconds: total, computeSeconds: BenchStats(timed.compute),
            allReduceSeconds: BenchStats(timed.reduce), allReduceWaitSeconds: BenchStats(timed.wait),
            flops: counters.totalFlops, projectionFlops: counters.projectionFlops, attentionFlops: counters.attentionFlops,
            planFlops: plan.totalFlops, flopsPerSecond: Double(counters.totalFlops) / max(total.median, 1e-12),
            allReduceBytes: bytes, rawAllReduceSeconds: raw,
            weightBytesPerStep: weights, weightBytesPerToken: weights / B,
            weightBytesPerSecond: Double(weights) / max(total.median, 1e-12), copyBytesPerSecond: copy.bytesPerSecond,
            cacheBytes: cache.bytes, memory: memory)
    }
}
