import Foundation
import Launch
import MLA
import Measure
import Planner
import Report
import TensorCore
import SafeTensors

/// The sweep: per tp, a rate probe, timed forwards (and decode steps) and a check run, each a
/// child `mpirun` job of this same binary; then one report and its figures.
public struct SweepRunner {
    public var config: MLAConfig
    public var model: String
    /// The model and the reduction of every child job, passed whole in its job file.
    public var choice: ModelChoice
    public var reduction: ReductionChoice
    public var tps: [Int]
    public var tokens: Int
    public var repeats: Int
    public var decodeContext: Int?
    public var decode: DecodePath
    public var checkTokens: Int
    public var out: String
    public var timeout: Int
    public var waitForIdle: Double?
    public var maxWait: Int
    public var launcher: MPILauncher
    /// The forward mode of every child job (`--invariant`).
    public var mode: ForwardMode
    var gate: GateLayout { choice.gate }

    public init(config: MLAConfig, model: String, choice: ModelChoice, reduction: ReductionChoice, tps: [Int], tokens: Int, repeats: Int,
                decodeContext: Int?, decode: DecodePath, checkTokens: Int, out: String, timeout: Int, waitForIdle: Double?,
                maxWait: Int, launcher: MPILauncher, mode: ForwardMode = .default) {
        self.config = config
        self.model = model
        self.choice = choice
        self.reduction = reduction
        self.tps = tps
        self.tokens = tokens
        self.repeats = repeats
        self.decodeContext = decodeContext
        self.decode = decode
        self.checkTokens = checkTokens
        self.out = out
        self.timeout = timeout
        self.waitForIdle = waitForIdle
        self.maxWait = maxWait
        self.launcher = launcher
        self.mode = mode
    }

    func file(_ name: String) -> String { (out as NSString).appendingPathComponent(name) }

    /// Runs every job, writes `sweep.json` and the figures into `out`; `progress` shows each job.
    public func run(progress: SweepProgress) throws -> (SweepReport, figures: [String]) {
        try OutputDirectory.subdirectory(file("jobs"))
        // The machine's rates, as `plan --hardware cpu-measured` measures them: with as many ranks
        // busy as will run at once (min(tp, cores)), so one probe per distinct count.
        let probeCounts = Array(Set(tps.map { min($0, launcher.cores) })).sorted()
        progress.total = probeCounts.count + tps.count * (1 + (checkTokens > 0 ? 1 : 0) + (decodeContext != nil ? 1 : 0))
        let shape = RateProbe.Shape.forward(tokens: tokens, hidden: config.hiddenSize)
        var rates: [Int: MeasuredRates] = [:], probeLoad: [Double] = []
        for n in probeCounts {
            progress.waitForIdle(waitForIdle, maxWait: maxWait)
            probeLoad.append(loadAverage() ?? 0)
            rates[n] = try probeRates(ranks: n, tokens: tokens, sequence: tokens, context: decodeContext, progress)
        }
        var rows: [SweepRow] = []
        for k in tps {
            progress.waitForIdle(waitForIdle, maxWait: maxWait)
            let load = loadAverage()
            var prefill = timed(shape, allReduceBytes: ShardingPlan.allReduceBytes(tokens: tokens, config: config), file: file("step-tp\(k).json"))
            prefill.tokens = tokens
            let step = try timedStep("tp=\(k): \(repeats) timed forwards of \(tokens) tokens", name: "step-tp\(k)", tp: k, prefill, progress)
            var check: RunReport?
            if checkTokens > 0 {
                var run = RunSpec()
                (run.tokens, run.check, run.json) = (checkTokens, true, true)
                let r = try job("tp=\(k): check against the unsharded forward (\(checkTokens) tokens)", name: "check-tp\(k)", ranks: k,
                                .run(run), timeout: timeout, progress)
                check = try JSONDecoder().decode(RunReport.self, from: Data(r.stdout.utf8))
            }
            let probe = rates[min(k, launcher.cores)]!
            let holding = { (hw: Hardware) in choice.holding(hw, config: config) }
            var row = try SweepRow(config: config, tp: k, gate: gate, tokens: tokens, step: step, rates: probe, check: check, mode: mode,
                                   precision: choice.storage.activations, holding: holding)
            row.loadAverage = load
            if let decodeContext {
                progress.waitForIdle(waitForIdle, maxWait: maxWait)
                var steps = timed(shape, allReduceBytes: ShardingPlan.allReduceBytes(tokens: 1, config: config), file: file("decode-tp\(k).json"))
                (steps.context, steps.decode) = (decodeContext, decode)
                let d = try timedStep("tp=\(k): \(repeats) decode steps (\(decode.rawValue)) after \(decodeContext) cached tokens",
                                      name: "decode-tp\(k)", tp: k, steps, progress)
                try row.addDecode(config: config, gate: gate, context: decodeContext, path: decode, step: d, rates: probe,
                                  precision: choice.storage.activations, holding: holding)
            }
            rows.append(row)
        }
        progress.finish()
        var report = SweepReport(model: model, gate: gate, tokens: tokens, rates: probeCounts.map { rates[$0]! }, probeLoadAverage: probeLoad,
                                 rows: rows, h100: try tps.map { Projection(cost: try FlopModel.prefill(config: config, tp: $0, gate: gate, sequenceLengths: [tokens], mode: mode),
                                                                        tokens: tokens, config: config, tp: $0, hardware: choice.holding(.h100, config: config)) })
        report.dtype = choice.dtype == .f32 ? nil : choice.dtype
        report.quantization = choice.quantization == .some(.none) ? nil : choice.quantization
        report.cacheDType = decodeContext == nil ? nil : choice.kvCacheDType
        report.kernels = mode == .invariant ? "fixed-order kernels (\(FixedOrderGemm.isa))"
            : GemmRoutes.prefill(precision: choice.dtype, quantization: choice.quantization)
        report.mode = mode == .invariant ? .invariant : nil
        try AtomicFile.write(Data(try Format.json(report).utf8), to: file("sweep.json"))
        return (report, try SweepFigures.write(report, config: config, to: out))
    }

    /// The rate probe as a child job of `ranks` ranks, all busy at once (`rates-Nranks.json`;
    /// `ChildJobs.probeRates`).
    func probeRates(ranks n: Int, tokens: Int, sequence: Int, context: Int?, _ progress: SweepProgress) throws -> MeasuredRates {
        try ChildJobs(choice: choice, reduction: reduction, mode: mode, out: out, launcher: launcher)
            .probeRates(config: config, ranks: n, tokens: tokens, sequence: sequence, context: context,
                        file: file("rates-\(n)rank\(n == 1 ? "" : "s").json"), progress)
    }

    /// A timed step (`--repeat` forwards, the rates measured first in the same job) writing its result to `file`.
    func timed(_ shape: RateProbe.Shape, allReduceBytes: Int, file: String) -> StepSpec {
        var s = StepSpec()
        (s.repeats, s.probeFirst, s.probeShape, s.probeAllReduceBytes, s.out) = (repeats, true, shape, allReduceBytes, file)
        return s
    }

    /// Runs `step` on `tp` ranks and reads its result.
    func timedStep(_ what: String, name: String, tp: Int, _ step: StepSpec, _ progress: SweepProgress) throws -> StepResult {
        try job(what, name: name, ranks: tp, .step(step), timeout: timeout, progress)
        return try MeasureError.decode(StepResult.self, path: step.out ?? "", what: "step result", remedy: "rerun the sweep")
    }

    /// Runs `work` with this sweep's model and reduction as child job `jobs/NAME.json` (`ChildJobs`).
    @discardableResult
    func job(_ what: String, name: String, ranks: Int, _ work: JobDescription.Work, timeout: Int,
             _ progress: SweepProgress) throws -> ChildProcess.Result {
        try ChildJobs(choice: choice, reduction: reduction, mode: mode, out: out, launcher: launcher).run(what, name: name, ranks: ranks, work,
                                                                                              timeout: timeout, progress)
    }

    /// Re-reads `out`'s sweep.json and rewrites its figures.
    public func replot() throws -> (SweepReport, figures: [String]) {
        let report = try MeasureError.decode(SweepReport.self, path: file("sweep.json"), what: "sweep report", remedy: "run the sweep first")
        return (report, try SweepFigures.write(report, config: config, to: out))
    }
}
