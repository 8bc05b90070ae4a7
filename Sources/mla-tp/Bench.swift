import ArgumentParser
import Foundation
import Measure
import MLA
import Report
import SwiftMPI
import TensorCore
import TensorParallel

/// `mla-tp bench`: times the forward on every rank and holds each part against a reference
/// measured in the same run (`BenchEngine`), then prints `BenchReport` with its targets.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time the forward per rank: stages, compute vs allreduce, GEMM rate vs sgemm, allreduce vs raw MPI, memory, decode bandwidth.",
        discussion: """
            mpirun -n K mla-tp bench [--preset NAME | --model DIR] [--tokens T] [--phase prefill|decode|both] \
            [--repeat N] [--decode naive|absorbed] [--batch B] [--check] [--json]

            Each phase runs --warmup untimed forwards, one more untimed forward around which memory is read, \
            then --repeat timed ones, each after a barrier, and reports their median, min and max per rank, \
            with each stage (q, kv, attention, gate, o_proj, wait, allreduce) timed on its own. \
            Right after each timed forward every rank runs the references together: cblas_sgemm on the \
            layer's largest hidden-wide weight (prefill), memcpy (decode) and a raw MPI_Allreduce of the \
            same bytes; ratios are medians of these pairs. Prefill is one sequence of T tokens; decode \
            first prefills B sequences of T tokens into a KV cache, then times steps of one new token per \
            sequence. The allreduce is preceded by a barrier whose time is reported apart as "wait" (load \
            imbalance), so that "allreduce" is the reduction itself. Speeds are what this machine did during \
            this run: check the load average and the cpu column the report prints.
            """)

    @OptionGroup var model: ModelOptions
    @OptionGroup var mode: ModeOptions
    @OptionGroup var reduce: CollectiveOptions

    @Option(parsing: .unconditional, help: "Prefill tokens (one sequence); for decode, the tokens cached per sequence before the timed steps.")
    var tokens = 256

    @Option(help: "Which forwards to time: prefill, decode or both.")
    var phase: BenchPhase = .prefill

    @Option(name: .customLong("repeat"), parsing: .unconditional, help: "Timed forwards (decode: steps) per phase.")
    var repeats = 5

    @Option(parsing: .unconditional, help: "Untimed forwards before the timed ones.")
    var warmup = 1

    @Option(help: "Decode path: naive (expand the cache through kv_b_proj) or absorbed.")
    var decode: DecodePath = .absorbed

    @Option(parsing: .unconditional, help: "Sequences decoding together, one new token each per step.")
    var batch = 1

    @Option(parsing: .unconditional, help: "MiB copied by the memcpy bandwidth probe (decode).")
    var copyMib = 256

    @Flag(help: "After timing, check a prefill of --tokens against the unsharded forward on rank 0.")
    var check = false

    @Flag(help: "Print the report as one JSON document.")
    var json = false

    @Flag(help: "Print one markdown table row per phase (with the header), as docs/performance.md shows them.")
    var markdown = false

    @Option(help: "Render a report saved with --json (as text, or --markdown) instead of running; needs no mpirun.")
    var fromJson: String?

    @Option(help: "With --dtype bf16: the PyTorch bf16 + gloo baseline (scripts/bench/torch_gloo_baseline.py --dtype bfloat16 --json), measured in the same session, for the prefill target.")
    var torchBaseline: String?

    @Option(help: "How the tensor-parallel group holds q_a_proj and kv_a_proj_with_mqa: replicated, column or sequence (as run's --latent-proj).")
    var latentProj: LatentProjection = .replicated

    @Flag(help: "When tp does not divide the heads, pad them with zero heads (as run's --pad-heads).")
    var padHeads = false

    func validate() throws {
        try requireAtLeast(1, "--tokens", tokens, "the prefill tokens (for decode, the tokens cached per sequence)")
        try requireAtLeast(1, "--repeat", repeats, "the timed forwards per phase")
        try requireAtLeast(0, "--warmup", warmup, "the untimed forwards before the timed ones")
        try requireAtLeast(1, "--batch", batch, "the sequences decoding together")
        try requireAtLeast(1, "--copy-mib", copyMib, "the MiB the memcpy probe copies")
        guard !(json && markdown) else { throw ValidationError("--json and --markdown cannot be combined — pick one") }
        try reduce.validate(dtype: model.dtype)
try mode.validate(model: model, reduce: reduce, decode: decode)
        if torchBaseline != nil && model.dtype != .bf16 {
            throw ValidationError("--torch-baseline is the bf16 prefill target's reference — add --dtype bf16, or drop it")
        }
    }

    func render(_ report: BenchReport) throws -> String { json ? try report.json() : markdown ? report.markdown() : report.text() }

    func run() throws {
        if let fromJson {
            let report = try MeasureError.decode(BenchReport.self, path: fromJson, what: "bench report",
                                                 remedy: "pass a file written by `mla-tp bench --json`")
            return RankOutputShim.out(try render(report))
        }
        let world = try Runtime.start()
        let load = loadAverage(), runtimeMemory = ProcessMemory.current()
        let (config, name) = try model.loadConfig()
        try config.validate(tp: world.size, latent: latentProj, padHeads: padHeads)
        let phases = phase.phases
        try requireBudget(try Runtime.budget(world), config: config, model: name, tp: world.size, phases: phases)
        let torch = try torchBaseline.map { try TorchBaseline.load($0, preset: name, tp: world.size, tokens: tokens) }
        let shard = Shard(rank: world.rank, size: world.size)
        if mode.invariant { try InvariantLayout.check(heads: config.numAttentionHeads, tp: world.size) }
        let baseline = try mode.invariant ? defaultModeBaseline(shard: shard, world: world, config: config) : nil
        let attention = try MLAAttention(config: config, shard: shard, gateLayout: model.gate,
                                         source: try model.weightSource(for: config), storage: model.storage, mode: mode.mode,
                                         latent: latentProj, padHeads: padHeads)
        var mine = BenchRankResult(rank: world.rank, blasThreads: BLAS.threads, weightBytes: attention.weightBytes,
                                   runtimeAnonymousBytes: runtimeMemory.anonymousBytes,
                                   loadedAnonymousBytes: ProcessMemory.current().anonymousBytes)
        (mine.prefill, mine.decode) = try measure(attention, world: world, config: config)
        mine.defaultMode = baseline
        let engine = BenchEngine(world: world, config: config, attention: attention, collectives: reduce.choice.collectives(world, dtype: model.dtype, mode: mode.mode),
                                 gate: model.gate, seed: model.seed)
        let ranks = try world.allGather(value: mine)
        let verdict = try engine.check(tokens: tokens, enabled: check) { try model.weightSource(for: config) }
        if world.rank == 0 {
            var report = BenchReport(model: name, config: config, tp: world.size, gate: model.gate, loadAverage: load,
                                     cpus: ProcessInfo.processInfo.activeProcessorCount, tokens: tokens, repeats: repeats, warmup: warmup,
                                     decodePath: phases.contains(.decode) ? decode : nil, batch: phases.contains(.decode) ? batch : nil, ranks: ranks,
                                     precision: model.dtype, allReduceDType: engine.collectives.reducePrecision, torchBaseline: torch)
            report.mode = mode.invariant ? .invariant : nil
            report.latent = latentProj == .replicated ? nil : latentProj
            report.check = verdict.result
            RankOutput(rank: 0).printRoot(try render(report))
        }
        guard verdict.pass else {
            throw CLIError(code: .numeric, message: "the TP result differs from the unsharded forward by more than \(TPCheck.tolerance(for: model.dtype)) relative — this is a sharding bug; report it")
        }
        try Environment.finalize()
    }
}
