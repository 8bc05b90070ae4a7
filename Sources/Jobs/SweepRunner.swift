import Foundation
import Launch
import MLA
import Measure
import Report
import TensorCore
import SafeTensors

/// The sweep: per tp, a rate probe, timed forwards (and decode steps) and a check run, each a
/// child `mpirun` job of this same binary; then one report and its figures.
public struct SweepRunner {
    public var config: MLAConfig
    public var model: String
    public var gate: GateLayout
    /// The flags that pick the model, passed through to every child job.
    public var modelArguments: [String]
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
    /// `--dtype` and `--allreduce-dtype` of every child job (nil: f32 and the default reduction).
    public var precision: Precision = .f32
    public var allReduceDType: Precision?

    public init(config: MLAConfig, model: String, gate: GateLayout, modelArguments: [String], tps: [Int], tokens: Int, repeats: Int,
                decodeContext: Int?, decode: DecodePath, checkTokens: Int, out: String, timeout: Int, waitForIdle: Double?,
                maxWait: Int, launcher: MPILauncher) {
        self.config = config
        self.model = model
        self.gate = gate
        self.modelArguments = modelArguments
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
    }

    func file(_ name: String) -> String { (out as NSString).appendingPathComponent(name) }

    /// The reduction flag every child that runs the layer gets (`--dtype` is in `modelArguments`).
    var reductionArguments: [String] { allReduceDType.map { ["--allreduce-dtype", $0.rawValue] } ?? [] }

    /// Runs every job, writes `sweep.json` and the figures into `out`; `progress` shows each job.
    public func run(progress: SweepProgress) throws -> (SweepReport, figures: [String]) {
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        // The machine's rates, as `plan --hardware cpu-measured` measures them: with as many ranks
        // busy as will run at once (min(tp, cores)), so one probe per distinct count.
        let probeCounts = Array(Set(tps.map { min($0, launcher.cores) })).sorted()
        progress.total = probeCounts.count + tps.count * (1 + (checkTokens > 0 ? 1 : 0) + (decodeContext != nil ? 1 : 0))
        let shape = RateProbe.Shape.forward(tokens: tokens, hidden: config.hiddenSize)
        let probeArgs = ["--probe-shape", shape.dims.map(String.init).joined(separator: ",")]
        var rates: [Int: MeasuredRates] = [:], probeLoad: [Double] = []
        for n in probeCounts {
            let path = file("rates-\(n)rank\(n == 1 ? "" : "s").json")
            progress.waitForIdle(waitForIdle, maxWait: maxWait)
            probeLoad.append(loadAverage() ?? 0)
            try job("rate probe (\(n) rank\(n == 1 ? "" : "s"))", ranks: n, ["sweep-step", "--probe"] + probeArgs
                    + ["--probe-allreduce-bytes", "\(ShardingPlan.allReduceBytes(tokens: tokens, config: config))", "--out", path],
                    timeout: 120, progress)
            rates[n] = try MeasuredRates.load(path)
        }
        var rows: [SweepRow] = []
        for k in tps {
            progress.waitForIdle(waitForIdle, maxWait: maxWait)
            let load = loadAverage()
            let step = try timedStep("tp=\(k): \(repeats) timed forwards of \(tokens) tokens", tp: k,
                                     ["--tokens", "\(tokens)"] + probeArgs + ["--probe-allreduce-bytes", "\(ShardingPlan.allReduceBytes(tokens: tokens, config: config))"],
                                     file: file("step-tp\(k).json"), progress)
            var check: RunReport?
            if checkTokens > 0 {
                let r = try job("tp=\(k): check against the unsharded forward (\(checkTokens) tokens)", ranks: k,
                                ["run"] + modelArguments + reductionArguments + ["--tokens", "\(checkTokens)", "--check", "--json"],
                                timeout: timeout, progress)
                check = try JSONDecoder().decode(RunReport.self, from: Data(r.stdout.utf8))
            }
            let probe = rates[min(k, launcher.cores)]!
            var row = try SweepRow(config: config, tp: k, gate: gate, tokens: tokens, step: step, rates: probe, check: check)
            row.loadAverage = load
            if let decodeContext {
                progress.waitForIdle(waitForIdle, maxWait: maxWait)
                let d = try timedStep("tp=\(k): \(repeats) decode steps (\(decode.rawValue)) after \(decodeContext) cached tokens", tp: k,
                                      ["--context", "\(decodeContext)", "--decode", decode.rawValue] + probeArgs
                                      + ["--probe-allreduce-bytes", "\(ShardingPlan.allReduceBytes(tokens: 1, config: config))"],
                                      file: file("decode-tp\(k).json"), progress)
                try row.addDecode(config: config, gate: gate, context: decodeContext, path: decode, step: d, rates: probe)
            }
            rows.append(row)
        }
        progress.finish()
        var report = SweepReport(model: model, gate: gate, tokens: tokens, rates: probeCounts.map { rates[$0]! }, probeLoadAverage: probeLoad,
                                 rows: rows, h100: try tps.map { Projection(cost: try FlopModel.prefill(config: config, tp: $0, gate: gate, sequenceLengths: [tokens]),
                                                                        tokens: tokens, config: config, tp: $0, hardware: .h100) })
        report.dtype = precision == .f32 ? nil : precision
        try AtomicFile.write(Data(try Format.json(report).utf8), to: file("sweep.json"))
        return (report, try SweepFigures.write(report, config: config, to: out))
    }

    /// `mpirun -n tp mla-tp sweep-step … --probe-first` writing its result to `file`.
    func timedStep(_ what: String, tp: Int, _ args: [String], file: String, _ progress: SweepProgress) throws -> StepResult {
        try job(what, ranks: tp, ["sweep-step"] + modelArguments + reductionArguments + args + ["--repeats", "\(repeats)", "--probe-first", "--out", file],
                timeout: timeout, progress)
        return try MeasureError.decode(StepResult.self, path: file, what: "step result", remedy: "rerun the sweep")
    }

    @discardableResult
    func job(_ what: String, ranks: Int, _ args: [String], timeout: Int, _ progress: SweepProgress) throws -> ChildProcess.Result {
        let r = progress.run(what) { tick in launcher.run(ranks: ranks, args, timeout: timeout, onTick: tick) }
        guard r.status == 0 else { throw MeasureError.childFailed(what: what, result: r, remedy: "rerun that job by hand") }
        return r
    }

    /// Re-reads `out`'s sweep.json and rewrites its figures.
    public func replot() throws -> (SweepReport, figures: [String]) {
        let report = try MeasureError.decode(SweepReport.self, path: file("sweep.json"), what: "sweep report", remedy: "run the sweep first")
        return (report, try SweepFigures.write(report, config: config, to: out))
    }
}
