import ArgumentParser
import Foundation
import MLA
import SwiftMPI
import TensorCore
import TensorParallel

/// `mpirun -n K mla-tp sweep-step`: one step of `sweep` (also used by `plan --hardware
/// cpu-measured`). Times repeated forwards with per-rank compute/allreduce segments on a shared
/// clock, or, with `--probe`, measures the rates the projection needs. Rank 0 writes JSON.
struct SweepStep: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sweep-step",
        abstract: "Time repeated forwards per rank (the sweep's step), or measure sgemm/copy/allreduce rates with --probe.",
        shouldDisplay: false)

    @OptionGroup var model: ModelOptions
    @OptionGroup var reduce: CollectiveOptions

    @Option(help: "Prefill tokens (one sequence); with --context, the decode batch is one sequence.")
    var tokens: Int = 128

    @Option(help: "Time decode steps after prefilling this many tokens into the latent cache (instead of a prefill).")
    var context: Int?

    @Option(help: "Decode path with --context: naive or absorbed.")
    var decode: DecodePath = .absorbed

    @Option(help: "Timed forwards (after one warm-up).")
    var repeats: Int = 5

    @Flag(help: "Measure sgemm, copy and allreduce rates instead of timing a forward.")
    var probe = false

    @Flag(help: "Measure the rates first, in the same job, then time the forward (the result holds both).")
    var probeFirst = false

    @Option(help: "Shape M,N,K of the probe's sgemm (x [M, K] · W with W [K, N]); sweep and plan pass the forward's tokens and hidden size.")
    var probeShape: String = "1024,1024,1024"

    @Option(help: "Bytes of the probe's large allreduce (sweep and plan pass the forward's [T, hidden] f32 payload).")
    var probeAllreduceBytes: Int = 4 << 20

    @Option(help: "Write the JSON result here (rank 0), else print it.")
    var out: String?

    func validate() throws {
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1") }
        guard tokens >= 0, (context ?? 0) >= 0 else { throw ValidationError("--tokens and --context must be ≥ 0") }
        guard shape.count == 3, shape.allSatisfy({ $0 >= 1 }) else { throw ValidationError("--probe-shape \(probeShape) needs M,N,K ≥ 1") }
    }

    func run() throws {
        let world = try Runtime.start()
        let text: String
        if probe {
            text = try encode(try RateProbe.measure(world, shape: shape, allReduceBytes: probeAllreduceBytes))
        } else {
            let rates = probeFirst ? try RateProbe.measure(world, shape: shape, allReduceBytes: probeAllreduceBytes) : nil
            var result = try time(world)
            result.rates = rates
            text = try encode(result)
        }
        if world.rank == 0 {
            if let out { try writeAtomically(Data(text.utf8), to: out) } else { RankOutput(rank: 0).printRoot(text) }
        }
        try Environment.finalize()
    }

    var shape: [Int] { probeShape.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) } }

    func encode<T: Encodable>(_ value: T) throws -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: try e.encode(value), as: UTF8.self)
    }

    func time(_ world: Communicator) throws -> StepResult {
        let tp = world.size, rank = world.rank
        let (config, name) = try model.loadConfig()
        try config.validate(tp: tp)
        try TokenBudget.check(tokens: max(tokens, context ?? 0), config: config, tp: tp)
        let layer = try MLAAttention(config: config, shard: Shard(rank: rank, size: tp), gateLayout: model.gate,
                                     source: try model.weightSource(for: config))
        let collectives = reduce.collectives(world)
        collectives.separateWait = true             // the barrier before the reduce: waiting for slower ranks, drawn apart
        let hidden = config.hiddenSize
        let forward: () throws -> Void
        if let context {
            let c = KVCache(config: config, sequences: 1)
            let batch = try Batch(sequenceLengths: [context])
            _ = try layer.prefill(try seededInput(tokens: context, hidden: hidden, seed: model.seed), batch: batch,
                                  cache: c, collectives: collectives)
            let x = try seededInput(tokens: 1, hidden: hidden, seed: model.seed &+ 1)
            let path = decode
            forward = { _ = try layer.decode(x, cache: c, path: path, collectives: collectives) }
        } else {
            let x = try seededInput(tokens: tokens, hidden: hidden, seed: model.seed)
            let batch = try Batch(sequenceLengths: [tokens])
            var out = Matrix(rows: tokens, cols: hidden)
            forward = { try layer.forward(x, batch: batch, collectives: collectives, into: &out) }
        }
        try forward()                                   // warm-up: sizes the workspace
        // Open MPI's MPI_Wtime counts from each process's own start, so the ranks' readings are
        // not comparable; CLOCK_MONOTONIC is one clock for every process on this host. The
        // collectives' segments (MPI_Wtime) are shifted onto it.
        let offset = monotonicSeconds() - Environment.wallTime()
        var mine: [Double] = []                          // per repeat: start, end, allreduce start, allreduce end, wait start
        for _ in 0..<repeats {
            collectives.resetCounters()
            try world.barrier()
            let t0 = monotonicSeconds()
            try forward()
            let t1 = monotonicSeconds()
            let seg = collectives.segments.first
            mine += [t0, t1, seg.map { $0.start + offset } ?? -1, seg.map { $0.end + offset } ?? -1,
                     seg.map { $0.start - collectives.waitSeconds + offset } ?? -1]
        }
        let flops = layer.counters.totalFlops
        let memory = ProcessMemory.current()
        let times = try world.allGather(mine)
        let stats = try world.allGather([Int64(memory.anonymousBytes), Int64(layer.weightBytes), Int64(flops)])
        return StepResult(model: name, tp: tp, gate: model.gate, tokens: context == nil ? tokens : 1,
                          context: context, decode: context == nil ? nil : decode, repeats: repeats, perRank: times, stats: stats)
    }
}

/// What one sweep step measured, as rank 0 writes it.
struct StepResult: Codable {
    struct Segment: Codable { var kind: String; var start: Double; var end: Double }
    struct RankStat: Codable {
        var rank: Int
        var anonymousBytes: Int
        var weightBytes: Int
        var flops: Int
        /// Median over repeats of this rank's forward and allreduce seconds.
        var forwardSeconds: Double
        var allReduceSeconds: Double
    }

    var model: String
    var tp: Int
    var gate: GateLayout
    /// New tokens per forward (the prefill's T, or 1 for a decode step).
    var tokens: Int
    var context: Int?
    var decode: DecodePath?
    var repeats: Int
    /// Per repeat: from the first rank's start to the last rank's end.
    var forwardSeconds: [Double]
    /// Median of `forwardSeconds`.
    var seconds: Double
    /// Fastest of `forwardSeconds` (the least disturbed by other work on a shared machine),
    /// and the mean allreduce time over ranks in that repeat.
    var bestSeconds: Double
    var bestAllReduceSeconds: Double
    /// Median over repeats of the mean allreduce time over ranks (the barrier before it, where a
    /// rank waits for slower ones, included); compute is the rest.
    var allReduceSeconds: Double
    var computeSeconds: Double { seconds - allReduceSeconds }
    var ranks: [RankStat]
    /// The fastest repeat, per rank, on a shared clock starting at 0.
    var timeline: [[Segment]]
    /// Rates measured in the same job just before (`--probe-first`).
    var rates: MeasuredRates?

    init(model: String, tp: Int, gate: GateLayout, tokens: Int, context: Int?, decode: DecodePath?, repeats: Int,
         perRank times: [Double], stats: [Int64]) {
        self.model = model
        self.tp = tp
        self.gate = gate
        self.tokens = tokens
        self.context = context
        self.decode = decode
        self.repeats = repeats
        func at(_ r: Int, _ i: Int, _ k: Int) -> Double { times[r * repeats * 5 + i * 5 + k] }
        var durations: [Double] = [], reduces: [Double] = []
        for i in 0..<repeats {
            let origin = (0..<tp).map { at($0, i, 0) }.min()!
            durations.append((0..<tp).map { at($0, i, 1) }.max()! - origin)
            reduces.append((0..<tp).map { r in at(r, i, 2) < 0 ? 0 : at(r, i, 3) - at(r, i, 4) }.reduce(0, +) / Double(tp))
        }
        forwardSeconds = durations
        seconds = median(durations)
        allReduceSeconds = median(reduces)
        let fastest = durations.indices.min { durations[$0] < durations[$1] } ?? 0
        bestSeconds = durations.isEmpty ? 0 : durations[fastest]
        bestAllReduceSeconds = reduces.isEmpty ? 0 : reduces[fastest]
        ranks = (0..<tp).map { r in
            RankStat(rank: r, anonymousBytes: Int(stats[3 * r]), weightBytes: Int(stats[3 * r + 1]), flops: Int(stats[3 * r + 2]),
                     forwardSeconds: median((0..<repeats).map { at(r, $0, 1) - at(r, $0, 0) }),
                     allReduceSeconds: median((0..<repeats).map { at(r, $0, 2) < 0 ? 0 : at(r, $0, 3) - at(r, $0, 4) }))
        }
        let pick = fastest
        let origin = (0..<tp).map { at($0, pick, 0) }.min() ?? 0
        timeline = (0..<tp).map { r in
            let (t0, t1, a0, a1) = (at(r, pick, 0) - origin, at(r, pick, 1) - origin, at(r, pick, 2) - origin, at(r, pick, 3) - origin)
            guard at(r, pick, 2) >= 0 else { return [Segment(kind: "compute", start: t0, end: t1)] }
            let w0 = at(r, pick, 4) - origin
            return [Segment(kind: "compute", start: t0, end: w0), Segment(kind: "wait", start: w0, end: a0),
                    Segment(kind: "allreduce", start: a0, end: a1), Segment(kind: "compute", start: a1, end: t1)]
        }
    }
}

/// Seconds on CLOCK_MONOTONIC: the same clock in every process of this host.
func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

func median(_ xs: [Double]) -> Double {
    guard !xs.isEmpty else { return 0 }
    let s = xs.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

/// The rate probe: every rank busy at once, as in a forward.
enum RateProbe {
    /// Repeats of each timed measurement; the best counts (on a shared machine most samples
    /// are slowed by other work, so more of them give a better chance of a clean one).
    static let repeats = 15

    /// Each rate is the best of its repeats (the run least disturbed by other work).
    static func measure(_ world: Communicator, shape: [Int] = [1024, 1024, 1024], allReduceBytes: Int = 4 << 20) throws -> MeasuredRates {
        let p = world.size
        // sgemm x [M, K] · W, W [K, N] (a projection's shape, in the [in, out] order the layer
        // keeps its forward-only weights in), one BLAS thread per rank.
        let (m, n, k) = (shape[0], shape[1], shape[2])
        let a = [Float](repeating: 0.5, count: m * k), b = [Float](repeating: 0.25, count: n * k)
        var c = [Float](repeating: 0, count: m * n)
        func gemm() {
            a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in c.withUnsafeMutableBufferPointer { cp in
                Gemm.run(m: m, n: n, k: k, a: ap.baseAddress!, lda: k, b: bp.baseAddress!, ldb: n, c: cp.baseAddress!, ldc: n)
            } } }
        }
        try world.barrier()
        gemm()
        let gemmTimes = (0..<RateProbe.repeats).map { _ in timed(gemm) }
        let sgemm = Double(Gemm.flops(m: m, n: n, k: k)) / gemmTimes.min()!

        // memcpy of 64 MiB: read + write counted.
        let count = 16 << 20
        let src = [Float](repeating: 1, count: count)
        var dst = [Float](repeating: 0, count: count)
        func copy() {
            src.withUnsafeBytes { s in dst.withUnsafeMutableBytes { d in _ = memcpy(d.baseAddress!, s.baseAddress!, s.count) } }
        }
        try world.barrier()
        copy()
        let copyRate = Double(2 * 4 * count) / (0..<RateProbe.repeats).map { _ in timed(copy) }.min()!

        // Allreduce: a small one for the per-step latency, a large one for the bandwidth.
        let small = 1024, large = max(allReduceBytes / 4, 2048)      // 4 KiB, and the forward's payload
        var bufSmall = [Float](repeating: 1, count: small), bufLarge = [Float](repeating: 1, count: large)
        var stepLatency = 0.0, linkRate = 0.0
        if p > 1 {
            try world.allReduce(&bufSmall)
            try world.barrier()
            var smallTimes: [Double] = []
            for _ in 0..<5 {
                try world.barrier()
                let t0 = Environment.wallTime()
                for _ in 0..<50 { try world.allReduce(&bufSmall) }
                smallTimes.append((Environment.wallTime() - t0) / 50)
            }
            let tSmall = smallTimes.min()!
            stepLatency = tSmall / Double(2 * (p - 1))
            try world.allReduce(&bufLarge)
            var largeTimes: [Double] = []
            for _ in 0..<RateProbe.repeats {
                try world.barrier()
                let s = Environment.wallTime()
                try world.allReduce(&bufLarge)
                largeTimes.append(Environment.wallTime() - s)
            }
            let sent = 2 * Double(p - 1) / Double(p) * Double(4 * large)
            linkRate = sent / max(largeTimes.min()! - 2 * Double(p - 1) * stepLatency, 1e-9)
        }
        // The slowest rank's compute rates (they ran concurrently); the collective is shared.
        let rates = try world.allGather([sgemm, copyRate])
        let sgemmMin = stride(from: 0, to: rates.count, by: 2).map { rates[$0] }.min() ?? sgemm
        let copyMin = stride(from: 1, to: rates.count, by: 2).map { rates[$0] }.min() ?? copyRate
        return MeasuredRates(sgemmFlopsPerSecond: sgemmMin, copyBytesPerSecond: copyMin, allReduceBytesPerSecond: linkRate,
                             allReduceStepLatencySeconds: stepLatency, allReduceLargeBytes: 4 * large, allReduceSmallBytes: 4 * small,
                             sgemmShape: shape,
                             ranks: p, cores: ProcessInfo.processInfo.activeProcessorCount)
    }

    static func timed(_ body: () -> Void) -> Double {
        let s = Environment.wallTime()
        body()
        return Environment.wallTime() - s
    }
}
