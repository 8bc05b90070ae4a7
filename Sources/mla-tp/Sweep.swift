import ArgumentParser
import Foundation
import Jobs
import Launch
import MLA
import Measure
import Planner
import Report
import SafeTensors
import SwiftMPI
import TensorCore
import TensorParallel

/// `mla-tp sweep`: runs the layer at each tp under mpirun (a plain process that drives the
/// jobs, `SweepRunner`), prints a progress line per job and one table at the end, and writes SVG figures.
struct Sweep: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the layer at several tp under mpirun: time per stage, compute/allreduce split, memory, error vs unsharded, projection, SVG figures.",
        discussion: """
            mla-tp sweep --preset deepseek-v3 --tp 1,2,4,8 --out sweep-v3
            Per tp: a `sweep-step --probe-first` job (rates, then repeated timed forwards with per-rank, per-stage \
            segments) and a `run --json --check` job (error vs the unsharded forward, memory), each given every model and \
            reduction flag in a job file (`mpirun -n K mla-tp job OUT/jobs/NAME.json` reruns one). \
            Writes sweep.json, timeline-tpK.svg, bytes-per-rank.svg and time-vs-projection.svg into --out.
            mla-tp sweep --layouts tp4,dp2xtp2,dp4,tp4-dcp2 --ranks 4 --batch 8 --decode-context 64
            With --layouts: each layout runs the same batch (--batch sequences of --decode-context tokens, then one \
            decode step) as a `run --dp D --dcp C … --check --json` job of RANKS ranks making --repeat passes (the fastest \
            is timed), beside its plan and its projection; writes layouts.json.
            """)

    @OptionGroup var model: ModelOptions
    @OptionGroup var reduce: CollectiveOptions
    @OptionGroup var mode: ModeOptions

    @Option(name: .customLong("tp"), parsing: .unconditional, help: "Comma-separated tensor-parallel sizes (default 1,2,4,8).",
            transform: IntList<Positive>.init(parsing:))
    var tpOption: IntList<Positive>?
    var tp: IntList<Positive> { tpOption ?? IntList([1, 2, 4, 8]) }

    @Option(parsing: .unconditional, help: "Prefill tokens of the timed forward (one sequence).")
    var tokens: Int = 128

    @OptionGroup var repeats: RepeatOptions

    @Option(parsing: .unconditional, help: "Also time decode steps (one token) after this many cached tokens, and project them.")
    var decodeContext: Int?

    @Option(help: "Decode path of --decode-context: naive or absorbed.")
    var decode: DecodePath = .absorbed

    @Option(parsing: .unconditional, help: "Tokens of the check run against the unsharded forward (0: skip the check).")
    var checkTokens: Int = 16

    @Option(help: "Directory for sweep.json and the SVG figures.")
    var out: String = "sweep"

    @Option(parsing: .unconditional, help: "Seconds each mpirun job may take.")
    var timeout: Int = 600

    @Option(parsing: .unconditional, help: "On a shared machine: before each timed job, wait (up to --max-wait seconds) until the 1-minute load average is below this.")
    var waitForIdle: Double?

    @Option(parsing: .unconditional, help: "Longest wait for --wait-for-idle, seconds.")
    var maxWait: Int = 600

    @Option(help: "Compare layouts of --ranks ranks instead of tp sizes (tpT, dpD, dpDxtpT, with -dcpC).")
    var layouts: String?

    @Option(name: .customLong("ranks"), parsing: .unconditional, help: "With --layouts: ranks of every layout (default 4).")
    var ranksOption: Int?
    var ranks: Int { ranksOption ?? 4 }

    @Option(name: .customLong("batch"), parsing: .unconditional, help: "With --layouts: sequences in the batch (default 4).")
    var batchOption: Int?
    var batch: Int { batchOption ?? 4 }

    @Flag(help: "Run nothing: re-read --out's sweep.json, print its table and rewrite its figures.")
    var replot = false

    func validate() throws {
        try requireAtLeast(1, "--tokens", tokens, "the prefill tokens of each timed forward")
        try requireAtLeast(1, repeats.flag, repeats.count, "the timed forwards per tp")
        try requireAtLeast(0, "--check-tokens", checkTokens, "the tokens of the check run (0 skips it)")
        try requireAtLeast(0, "--decode-context", decodeContext ?? 0, "the tokens cached before the timed decode steps")
        try requireAtLeast(1, "--timeout", timeout, "the seconds each mpirun job may take")
        try requireAtLeast(0, "--max-wait", maxWait, "the longest wait for --wait-for-idle, in seconds")
        try requireAtLeast(1, "--ranks", ranks, "the ranks of every layout")
        try requireAtLeast(1, "--batch", batch, "the sequences of the layouts' batch")
        // Each job runs all its ranks on this machine: the launch policy's bound on one job.
        let most = MPILauncher.maxRanks(cores: ProcessInfo.processInfo.activeProcessorCount)
        let remedy = "a job on this machine's \(ProcessInfo.processInfo.activeProcessorCount) cores runs at most \(most) ranks (4 per core, at least 16)"
        try requireAtMost(most, "--ranks", ranks, remedy)
        for t in tp.values { try requireAtMost(most, "--tp", t, remedy) }
        if let waitForIdle, !(waitForIdle.isFinite && waitForIdle > 0) {
            throw ValidationError("--wait-for-idle \(waitForIdle) must be a load average above 0 — e.g. --wait-for-idle 1.5 waits until fewer than 1.5 processes are runnable")
        }
        if layouts != nil {
            // The layouts' jobs are `run --dp D --dcp C` jobs: what run refuses, refuse here.
            guard tpOption == nil else { throw ValidationError("--layouts compares layouts of --ranks — drop --tp") }
        } else if ranksOption != nil || batchOption != nil {
            throw ValidationError("--ranks and --batch size the jobs of --layouts — add --layouts, or drop them (the tp sweep runs --tp)")
        }
        try reduce.validate(dtype: model.dtype)
        try mode.validate(model: model, reduce: reduce, decode: decode)
    }

    func run() throws {
        let (config, name) = try model.loadConfig()
        if let layouts {
            let list = try ParallelLayout.list(layouts, ranks: ranks)
            for l in list {
                try config.validate(tp: l.tp, latent: l.latent, padHeads: true)
                if mode.invariant { try InvariantLayout.check(heads: config.numAttentionHeads, tp: l.tp, dcp: l.dcp) }
            }
            if decode == .naive, let split = list.first(where: { $0.dcp > 1 }) {
                throw CLIError.usage("--decode naive expands the whole cache on every rank, which layout \(split) splits — use --decode absorbed (the default) with a -dcp layout")
            }
            try claimOut()
            let report = try runner(config, name).runLayouts(list, ranks: ranks, batch: batch, context: decodeContext ?? tokens,
                                                             progress: SweepProgress(rewrite: isatty(2) != 0) { RankOutput.write($0, fd: 2) })
            return RankOutputShim.out(report.text() + "\nWrote \(out)/layouts.json")
        }
        if !replot {
            for k in tp.values {
                try config.validate(tp: k)
                if mode.invariant { try InvariantLayout.check(heads: config.numAttentionHeads, tp: k) }
                try requireBudget(config, model: name, tp: k)
            }
        }
        try claimOut()
        let runner = runner(config, name)
        let tty = isatty(2) != 0
        let (report, figures) = replot ? try runner.replot()
            : try runner.run(progress: SweepProgress(rewrite: tty) { RankOutput.write($0, fd: 2) })
        RankOutputShim.out(report.text() + "\n\(replot ? "Rewrote" : "Wrote \(out)/sweep.json and") " + figures.joined(separator: ", "))
    }

    /// --out before any job starts: a file, a missing parent, a read-only filesystem or another
    /// sweep writing it is one line and nothing run; held by this sweep until it ends.
    func claimOut() throws {
        if !replot { return try OutputDirectory.prepare(out) }
        if try OutputDirectory.check(out) { try OutputDirectory.claim(out) }
    }

    func runner(_ config: MLAConfig, _ name: String) -> SweepRunner {
        SweepRunner(config: config, model: name, choice: model.choice, reduction: reduce.choice, tps: tp.values,
                    tokens: tokens, repeats: repeats.count, decodeContext: decodeContext, decode: decode, checkTokens: checkTokens,
                    out: out, timeout: timeout, waitForIdle: waitForIdle, maxWait: maxWait, launcher: Runtime.launcher, mode: mode.mode)
    }
}
