import ArgumentParser
import Foundation
import Jobs
import MLA
import Measure
import Report
import SafeTensors
import SwiftMPI
import TensorParallel

/// `mla-tp invariance`: the same sequences under each layout (a child mpirun job each), batched
/// and chunked each way asked, compared bit for bit with the first configuration, stage by stage
/// (`InvarianceRunner`); exit 5 when any configuration differs.
struct Invariance: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the same sequences under several layouts, batches and chunkings and show which give other bits, and from which stage.",
        discussion: """
            mla-tp invariance --preset tiny --dtype bf16 --layouts tp1,tp2,tp4,dp2xtp2,tp4-dcp2
            Each layout is one `mpirun -n dp×tp mla-tp job` running every --batches arrangement × --chunks chunking of the \
            --seqs sequences with every stage (q, kv, attention, gate, o_proj) hashed per sequence, per head where heads are \
            split (combined in head order, so tp = 1 and tp = 8 hash the same values alike). Prints a matrix against the first \
            configuration: identical, or N/M @ S — N of M output elements differ, first at stage S. Exits 5 when any differs \
            (docs/invariance.md). Writes invariance.json, the job files and the traces into --out.
            """)

    @OptionGroup var model: ModelOptions
    @OptionGroup var reduce: CollectiveOptions
    @OptionGroup var mode: ModeOptions

    @Option(help: "Layouts to compare, comma-separated: tpT, dpDxtpT, with -dcpC (e.g. tp1,tp2,tp4,tp8,tp8-dcp8,dp2xtp4); each runs on dp × tp ranks.")
    var layouts: String

    @Option(parsing: .unconditional, help: "Ranks of a layout named without its tp, such as dp4 (D groups of RANKS/D).")
    var ranks: Int?

    @Option(parsing: .unconditional, help: "Sequence lengths, by sequence id (default 5,3,4).", transform: IntList<Positive>.init(parsing:))
    var seqs: IntList<Positive>?

    @Option(help: "Batch arrangements: together (one batch in id order), alone (a batch per sequence), reversed (default together,alone,reversed).",
            transform: NameList<BatchArrangement>.init(parsing:))
    var batches: NameList<BatchArrangement>?

    @Option(help: "How the tokens arrive: forward (one plain forward), prefill (one prefill step through the cache), chunkC (C tokens per step), decode (a token per step) (default forward,chunk2,decode).",
            transform: NameList<Chunking>.init(parsing:))
    var chunks: NameList<Chunking>?

    @Option(help: "Decode path of the cached steps: absorbed or naive.")
    var decode: DecodePath = .absorbed

    @Flag(help: "Print the report as one JSON document.")
    var json = false

    @Option(help: "Directory for invariance.json, the job files and the traces (default: a temporary directory, removed at the end).")
    var out: String?

    @Option(parsing: .unconditional, help: "Seconds each layout's mpirun job may take.")
    var timeout: Int = 300

    var lengths: [Int] { seqs?.values ?? [5, 3, 4] }
    var arrangements: [BatchArrangement] { batches?.values ?? [.together, .alone, .reversed] }
    var chunkings: [Chunking] { chunks?.values ?? [.forward, .chunk(2), .decode] }

    func validate() throws {
        if let ranks { try requireAtLeast(1, "--ranks", ranks, "the ranks of a layout named without its tp") }
        try requireAtLeast(1, "--timeout", timeout, "the seconds each layout's mpirun job may take")
        for (flag, names) in [("--batches", arrangements.map(\.rawValue)), ("--chunks", chunkings.map(\.description))] {
            if let twice = names.first(where: { name in names.filter { $0 == name }.count > 1 }) {
                throw ValidationError("\(flag) lists \(twice) twice — list each once (a layout may repeat in --layouts, to compare a run with itself)")
            }
        }
        try reduce.validate(dtype: model.dtype)
        try mode.validate(model: model, reduce: reduce, decode: decode)
    }

    func run() throws {
        let (config, name) = try model.loadConfig()
        try config.validate()
        let list = try ParallelLayout.list(layouts, ranks: nil, fallback: ranks)
        if let bad = list.first(where: { config.numAttentionHeads % $0.tp != 0 }) {
            let sizes = MLAConfig.tensorParallelSizes(heads: config.numAttentionHeads).map(String.init).joined(separator: ", ")
            throw CLIError.config("layout \(bad) splits \(config.numAttentionHeads) heads over tp \(bad.tp), which does not divide them — use layouts whose tp is one of \(sizes)")
        }
        for l in list { try config.validate(tp: l.tp, latent: l.latent) }
        if mode.invariant { for l in list { try InvariantLayout.check(heads: config.numAttentionHeads, tp: l.tp, dcp: l.dcp) } }
        if decode == .naive, let split = list.first(where: { $0.dcp > 1 }) {
            throw CLIError.usage("--decode naive expands the whole cache on every rank, which layout \(split) splits — use --decode absorbed (the default) with a -dcp layout")
        }
        let dir = out ?? FileManager.default.temporaryDirectory.appendingPathComponent("mla-tp-invariance-\(getpid())").path
        try OutputDirectory.prepare(dir)
        defer { if out == nil { try? FileManager.default.removeItem(atPath: dir) } }
        let runner = InvarianceRunner(model: name, jobs: ChildJobs(choice: model.choice, reduction: reduce.choice, mode: mode.mode, out: dir,
                                                                            launcher: Runtime.launcher),
                                      layouts: list, lengths: lengths, arrangements: arrangements, chunkings: chunkings, decode: decode,
                                      timeout: timeout)
        let report = try runner.run(progress: SweepProgress(rewrite: isatty(2) != 0) { RankOutput.write($0, fd: 2) })
        RankOutputShim.out(json ? try Format.json(report) : report.text() + (out.map { "Wrote \($0)/invariance.json" } ?? ""))
        if let drift = report.drift { throw drift }
    }

    /// One layout's job (`mla-tp job FILE` of an invariance run), on every rank: rank 0 writes the trace.
    static func perform(_ job: JobDescription, _ spec: InvarianceSpec) throws {
        let world = try Runtime.start()
        let (config, name) = try job.model.loadConfig()
        let layout = try ParallelLayout(ranks: world.size, dp: spec.dp, dcp: spec.dcp, latent: spec.latent)
        try config.validate(tp: layout.tp, latent: layout.latent)
        if job.mode == .invariant { try InvariantLayout.check(heads: config.numAttentionHeads, tp: layout.tp, dcp: layout.dcp) }
        try Runtime.budget(world).requireWeights(config: config, tp: layout.tp, gate: job.model.gate, check: false, model: name)
        let trace = try InvarianceJob(config: config, choice: job.model, mode: job.mode, spec: spec, layout: layout)
            .execute(world: world, collectives: { job.reduction.collectives($0, dtype: job.model.dtype, mode: job.mode) }) { try job.model.weightSource(for: config) }
        if let trace { try AtomicFile.write(Data(try Format.json(trace).utf8), to: spec.out) }
        try Environment.finalize()
    }
}
