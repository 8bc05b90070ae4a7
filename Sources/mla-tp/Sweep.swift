import ArgumentParser
import Foundation
import MLA
import Report
import SwiftMPI
import TensorParallel

/// `mla-tp sweep`: runs the layer at each tp under mpirun (a plain process that drives the
/// jobs, `SweepRunner`), prints a progress line per job and one table at the end, and writes SVG figures.
struct Sweep: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the layer at several tp under mpirun: time per stage, compute/allreduce split, memory, error vs unsharded, projection, SVG figures.",
        discussion: """
            mla-tp sweep --preset deepseek-v3 --tp 1,2,4,8 --out sweep-v3
            Per tp: `mpirun -n K mla-tp sweep-step --probe-first` (rates, then repeated timed forwards with \
            per-rank, per-stage segments) and `mpirun -n K mla-tp run --json --check` (error vs the unsharded forward, memory). \
            Writes sweep.json, timeline-tpK.svg, bytes-per-rank.svg and time-vs-projection.svg into --out.
            mla-tp sweep --layouts tp4,dp2xtp2,dp4,tp4-dcp2 --ranks 4 --batch 8 --decode-context 64
            With --layouts: each layout runs the same batch (--batch sequences of --decode-context tokens, then one \
            decode step) as `mpirun -n RANKS mla-tp run --dp D --dcp C … --check --json`, beside its plan; writes layouts.json.
            """)

    @OptionGroup var model: ModelOptions

    @Option(help: "Comma-separated tensor-parallel sizes.", transform: IntList<Positive>.init(parsing:))
    var tp = IntList<Positive>([1, 2, 4, 8])

    @Option(help: "Prefill tokens of the timed forward (one sequence).")
    var tokens: Int = 128

    @Option(help: "Timed forwards per tp (after one warm-up).")
    var repeats: Int = 5

    @Option(help: "Also time decode steps (one token) after this many cached tokens, and project them.")
    var decodeContext: Int?

    @Option(help: "Decode path of --decode-context: naive or absorbed.")
    var decode: DecodePath = .absorbed

    @Option(help: "Tokens of the check run against the unsharded forward (0: skip the check).")
    var checkTokens: Int = 16

    @Option(help: "Directory for sweep.json and the SVG figures.")
    var out: String = "sweep"

    @Option(help: "Seconds each mpirun job may take.")
    var timeout: Int = 600

    @Option(help: "On a shared machine: before each timed job, wait (up to --max-wait seconds) until the 1-minute load average is below this.")
    var waitForIdle: Double?

    @Option(help: "Longest wait for --wait-for-idle, seconds.")
    var maxWait: Int = 600

    @Option(help: "Compare layouts of --ranks ranks instead of tp sizes (tpT, dpD, dpDxtpT, with -dcpC).")
    var layouts: String?

    @Option(help: "With --layouts: ranks of every layout.")
    var ranks: Int = 4

    @Option(help: "With --layouts: sequences in the batch.")
    var batch: Int = 4

    @Flag(help: "Run nothing: re-read --out's sweep.json, print its table and rewrite its figures.")
    var replot = false

    func validate() throws {
        guard tokens >= 1, repeats >= 1 else { throw ValidationError("--tokens and --repeats must be ≥ 1") }
        guard checkTokens >= 0, (decodeContext ?? 0) >= 0 else { throw ValidationError("--check-tokens and --decode-context must be ≥ 0") }
        guard timeout >= 1, maxWait >= 0 else { throw ValidationError("--timeout must be ≥ 1 and --max-wait ≥ 0 seconds") }
        guard ranks >= 1, batch >= 1 else { throw ValidationError("--ranks and --batch must be at least 1") }
    }

    func run() throws {
        let (config, name) = try model.loadConfig()
        if let layouts {
            let list = try layouts.split(separator: ",").map { try ParallelLayout(name: String($0), ranks: ranks) }
            for l in list { try config.validate(tp: l.tp) }
            let report = try runner(config, name).runLayouts(list, ranks: ranks, batch: batch, context: decodeContext ?? tokens,
                                                             progress: SweepProgress(rewrite: isatty(2) != 0) { RankOutput.write($0, fd: 2) })
            return RankOutputShim.out(report.text() + "\nWrote \(out)/layouts.json")
        }
        if !replot { for k in tp.values { try config.validate(tp: k) } }
        let runner = runner(config, name)
        let tty = isatty(2) != 0
        let (report, figures) = replot ? try runner.replot()
            : try runner.run(progress: SweepProgress(rewrite: tty) { RankOutput.write($0, fd: 2) })
        RankOutputShim.out(report.text() + "\n\(replot ? "Rewrote" : "Wrote \(out)/sweep.json and") " + figures.joined(separator: ", "))
    }

    func runner(_ config: MLAConfig, _ name: String) -> SweepRunner {
        SweepRunner(config: config, model: name, gate: model.gate, modelArguments: model.arguments, tps: tp.values,
                    tokens: tokens, repeats: repeats, decodeContext: decodeContext, decode: decode, checkTokens: checkTokens,
                    out: out, timeout: timeout, waitForIdle: waitForIdle, maxWait: maxWait, launcher: Runtime.launcher)
    }
}
