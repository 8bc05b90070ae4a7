import Foundation
import Launch
import MLA
import Measure
import Planner

/// The child jobs of one parent command (`sweep`, `invariance`): each written as a job file into
/// `out`/jobs/ with the parent's model and reduction, then run as `mpirun -n K mla-tp job FILE`.
public struct ChildJobs {
    public var choice: ModelChoice
    public var reduction: ReductionChoice
    public var mode: ForwardMode = .default
    public var out: String
    public var launcher: MPILauncher

    public init(choice: ModelChoice, reduction: ReductionChoice, mode: ForwardMode = .default, out: String, launcher: MPILauncher) {
        self.choice = choice
        self.reduction = reduction
        self.mode = mode
        self.out = out
        self.launcher = launcher
    }

    /// Writes the job (`work` with this parent's model and reduction) to `jobs/NAME.json` in `out`
    /// and runs it on `ranks` ranks, showing it in `progress`; a failed job throws, naming the
    /// command that reruns it.
    @discardableResult
    public func run(_ what: String, name: String, ranks: Int, _ work: JobDescription.Work, timeout: Int,
                    _ progress: SweepProgress) throws -> ChildProcess.Result {
        let path = (out as NSString).appendingPathComponent("jobs/\(name).json")
        try JobDescription(model: choice, reduction: reduction, mode: mode, work: work).write(to: path)
        let r = progress.run(what) { tick in launcher.run(ranks: ranks, ["job", path], timeout: timeout, onTick: tick) }
        guard r.status == 0 else {
            throw MeasureError.childFailed(what: what, result: r, remedy: "rerun that job by hand: mpirun -n \(ranks) mla-tp job \(path)")
        }
        return r
    }

    /// The rate probe as a child job of `ranks` ranks, all busy at once, its rates written to
    /// `file`: the GEMMs at the shape of a forward of `tokens` tokens of `config` and its
    /// allreduce, the attention kernel on one sequence of `sequence` tokens, the absorbed decode
    /// after `context` cached ones, the decode's weight streaming and the reductions, in this
    /// parent's precision, weight format and reduction.
    public func probeRates(config: MLAConfig, ranks n: Int, tokens: Int, sequence: Int, context: Int?, file: String,
                           _ progress: SweepProgress) throws -> MeasuredRates {
        var probe = StepSpec()
        (probe.probe, probe.probeShape, probe.probeAttentionTokens) = (true, .forward(tokens: tokens, hidden: config.hiddenSize), sequence)
        probe.probeDecodeContext = context.map { $0 + 1 }
        (probe.probeAllReduceBytes, probe.out) = (ShardingPlan.allReduceBytes(tokens: tokens, config: config), file)
        try run("rate probe (\(n) rank\(n == 1 ? "" : "s"))", name: "probe-\(n)", ranks: n, .step(probe), timeout: 120, progress)
        return try MeasuredRates.load(file)
    }

    /// The same probe for a command that keeps no output directory (`plan --hardware
    /// cpu-measured`): its job file and rates in a temporary directory, removed once read (kept,
    /// and named in the error, when the job fails). The attention kernel is timed on at most
    /// `longestProbedSequence` tokens and the absorbed decode after at most `longestProbedContext`:
    /// past a few blocks their rates no longer change with the length, and a plan of a 32k
    /// context would otherwise spend minutes in the probe.
    public static func probeRates(choice: ModelChoice, config: MLAConfig, ranks: Int, tokens: Int, sequence: Int, context: Int?,
                                  launcher: MPILauncher) throws -> MeasuredRates {
        let (sequence, context) = (min(sequence, longestProbedSequence), context.map { min($0, longestProbedContext) })
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mla-tp-probe-\(getpid())").path
        try FileManager.default.createDirectory(atPath: (dir as NSString).appendingPathComponent("jobs"), withIntermediateDirectories: true)
        let jobs = ChildJobs(choice: choice, reduction: ReductionChoice(), out: dir, launcher: launcher)
        let rates: MeasuredRates
        do {
            rates = try jobs.probeRates(config: config, ranks: ranks, tokens: tokens, sequence: sequence, context: context,
                                        file: (dir as NSString).appendingPathComponent("rates.json"), SweepProgress(rewrite: false) { _ in })
        } catch let MeasureError.childFailed(what, result, remedy) {
            throw MeasureError.childFailed(what: what, result: result, remedy: remedy + "; or plan from rates measured apart: "
                                           + "mpirun -n \(ranks) mla-tp sweep-step --probe --out rates.json (with this plan's model flags), then --rates rates.json")
        }
        try? FileManager.default.removeItem(atPath: dir)
        return rates
    }

    public static let longestProbedSequence = 1024, longestProbedContext = 8192
}
