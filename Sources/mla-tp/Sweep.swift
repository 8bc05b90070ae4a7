import ArgumentParser
import Foundation
import MLA
import Plot
import SwiftMPI

/// `mla-tp sweep`: runs the layer at each tp under mpirun (a plain process that drives the
/// jobs), prints a progress line per step and one table at the end, and writes SVG figures.
struct Sweep: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the layer at several tp under mpirun: time, compute/allreduce split, memory, error vs unsharded, projection, SVG figures.",
        discussion: """
            mla-tp sweep --preset deepseek-v3 --tp 1,2,4,8 --out sweep-v3
            Per tp: `mpirun -n K mla-tp sweep-step --probe-first` (rates, then repeated timed forwards with \
            per-rank segments) and `mpirun -n K mla-tp run --json --check` (error vs the unsharded forward, memory). \
            Writes sweep.json, timeline-tpK.svg, bytes-per-rank.svg and time-vs-projection.svg into --out.
            """)

    @OptionGroup var model: ModelOptions

    @Option(help: "Comma-separated tensor-parallel sizes.")
    var tp: String = "1,2,4,8"

    @Option(help: "Prefill tokens of the timed forward (one sequence).")
    var tokens: Int = 128

    @Option(help: "Timed forwards per tp (after one warm-up).")
    var repeats: Int = 5

    @Option(help: "Also time decode steps (one token, absorbed path) after this many cached tokens, and project them.")
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

    @Flag(help: "Run nothing: re-read --out's sweep.json, print its table and rewrite its figures.")
    var replot = false

    func validate() throws {
        guard (try? tpList()) != nil else { throw ValidationError("--tp \(tp) must be comma-separated positive integers, e.g. 1,2,4,8") }
        guard tokens >= 1, repeats >= 1, checkTokens >= 0 else { throw ValidationError("--tokens and --repeats must be ≥ 1, --check-tokens ≥ 0") }
    }

    func tpList() throws -> [Int] {
        let list = tp.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !list.isEmpty, list.allSatisfy({ ($0 ?? 0) >= 1 }) else { throw CLIError.usage("bad --tp \(tp)") }
        return list.map { $0! }
    }

    /// The flags that pick the model, passed through to the child jobs.
    var modelArgs: [String] {
        var a: [String] = []
        if let p = model.preset { a += ["--preset", p] }
        if let m = model.model { a += ["--model", m] }
        if let c = model.config { a += ["--config", c] }
        if let w = model.weights { a += ["--weights", w] }
        if let act = model.act { a += ["--act", act] }
        for o in model.overrides { a += ["--set", o] }
        return a + ["--gate", model.gate.rawValue, "--seed", "\(model.seed)"]
    }

    func run() throws {
        let tps = try tpList()
        let (config, name) = try model.loadConfig()
        if replot {
            let path = (out as NSString).appendingPathComponent("sweep.json")
            guard let data = FileManager.default.contents(atPath: path) else {
                throw CLIError.input("no \(path) to replot — run the sweep first")
            }
            let report = try JSONDecoder().decode(SweepReport.self, from: data)
            let figures = try SweepFigures.write(report, config: config, to: out)
            RankOutputShim.out(report.text() + "\nRewrote " + figures.joined(separator: ", "))
            return
        }
        for k in tps { try config.validate(tp: k) }
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        // The machine's rates, measured as `plan --hardware cpu-measured` does: with as many ranks
        // busy as will run at once (min(tp, cores)), so one probe per distinct count.
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let probeCounts = Array(Set(tps.map { min($0, cores) })).sorted()
        let progress = Progress(total: probeCounts.count + tps.count * (1 + (checkTokens > 0 ? 1 : 0) + (decodeContext != nil ? 1 : 0)))
        let shape = MeasuredRates.probeShape(tokens: tokens, config: config)
        let payload = "\(ShardingPlan.allReduceBytes(tokens: tokens, config: config))"
        var ratesByRanks: [Int: MeasuredRates] = [:]
        var probeLoad: [Double] = []
        for n in probeCounts {
            let file = (out as NSString).appendingPathComponent("rates-\(n)rank\(n == 1 ? "" : "s").json")
            progress.waitForIdle(waitForIdle, maxWait: maxWait)
            probeLoad.append(currentLoadAverage() ?? 0)
            let probe = progress.run("rate probe (\(n) rank\(n == 1 ? "" : "s"))", ranks: n,
                                     ["sweep-step", "--probe", "--probe-shape", shape, "--probe-allreduce-bytes", payload, "--out", file],
                                     timeout: 120)
            guard probe.status == 0 else { throw childFailure("the rate probe", probe) }
            ratesByRanks[n] = try MeasuredRates.load(file)
        }

        var rows: [SweepRow] = []
        for k in tps {
            let stepFile = (out as NSString).appendingPathComponent("step-tp\(k).json")
            progress.waitForIdle(waitForIdle, maxWait: maxWait)
            let load = currentLoadAverage()
            let r = progress.run("tp=\(k): \(repeats) timed forwards of \(tokens) tokens", ranks: k,
                                 ["sweep-step"] + modelArgs + ["--tokens", "\(tokens)", "--repeats", "\(repeats)", "--probe-first", "--probe-shape", shape,
                                                         "--probe-allreduce-bytes", payload, "--out", stepFile],
                                 timeout: timeout)
            guard r.status == 0 else { throw childFailure("tp=\(k) timing", r) }
            let step = try JSONDecoder().decode(StepResult.self, from: Data(contentsOf: URL(fileURLWithPath: stepFile)))
            var check: (relative: Double, memory: [Int])?
            if checkTokens > 0 {
                let c = progress.run("tp=\(k): check against the unsharded forward (\(checkTokens) tokens)", ranks: k,
                                     ["run"] + modelArgs + ["--tokens", "\(checkTokens)", "--check", "--json"], timeout: timeout)
                guard c.status == 0 else { throw childFailure("tp=\(k) check", c) }
                check = try parseCheck(c.stdout)
            }
            let rates = ratesByRanks[min(k, cores)]!
            var row = SweepRow(config: config, tp: k, gate: model.gate, tokens: tokens, step: step, rates: rates, check: check)
            row.loadAverage = load
            if let decodeContext {
                let decodeFile = (out as NSString).appendingPathComponent("decode-tp\(k).json")
                progress.waitForIdle(waitForIdle, maxWait: maxWait)
                let d = progress.run("tp=\(k): \(repeats) decode steps (\(decode.rawValue)) after \(decodeContext) cached tokens", ranks: k,
                                     ["sweep-step"] + modelArgs + ["--context", "\(decodeContext)", "--decode", decode.rawValue,
                                                                   "--repeats", "\(repeats)", "--probe-first", "--probe-shape", shape,
                                                                   "--probe-allreduce-bytes", "\(ShardingPlan.allReduceBytes(tokens: 1, config: config))",
                                                                   "--out", decodeFile],
                                     timeout: timeout)
                guard d.status == 0 else { throw childFailure("tp=\(k) decode timing", d) }
                let dstep = try JSONDecoder().decode(StepResult.self, from: Data(contentsOf: URL(fileURLWithPath: decodeFile)))
                row.addDecode(config: config, gate: model.gate, context: decodeContext, path: decode, step: dstep, rates: rates)
            }
            rows.append(row)
        }
        progress.finish()

        let report = SweepReport(model: name, gate: model.gate, tokens: tokens, rates: probeCounts.map { ratesByRanks[$0]! },
                                 probeLoadAverage: probeLoad, rows: rows,
                                 h100: tps.map { Projection(cost: FlopModel.prefill(config: config, tp: $0, gate: model.gate, sequenceLengths: [tokens]),
                                                            tokens: tokens, config: config, tp: $0, hardware: .h100) })
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try writeAtomically(try encoder.encode(report), to: (out as NSString).appendingPathComponent("sweep.json"))
        let figures = try SweepFigures.write(report, config: config, to: out)
        RankOutputShim.out(report.text() + "\nWrote \(out)/sweep.json and " + figures.joined(separator: ", "))
    }

    func parseCheck(_ stdout: String) throws -> (relative: Double, memory: [Int]) {
        guard let doc = try? JSONSerialization.jsonObject(with: Data(stdout.utf8)) as? [String: Any] else {
            throw CLIError(code: .internal, message: "the check run printed no JSON report — rerun it by hand to see why")
        }
        let rel = ((doc["check"] as? [String: Any])?["relative"] as? NSNumber)?.doubleValue ?? .nan
        let mem = (doc["ranks"] as? [[String: Any]] ?? []).map { ($0["anonymousMemory"] as? NSNumber)?.intValue ?? 0 }
        return (rel, mem)
    }

    func childFailure(_ what: String, _ r: MPILaunch.Result) -> CLIError {
        let last = (r.stderr + r.stdout).split(separator: "\n").last.map(String.init) ?? "no output"
        return CLIError(code: .internal, message: "\(what) failed (status \(r.status)): \(last) — rerun that job by hand")
    }
}

/// The sweep's progress: one line per job with its index, elapsed time and an estimate of what
/// is left (average job time so far × jobs left), rewritten in place on a terminal.
final class Progress {
    let total: Int
    var done = 0
    let start = Date()
    let tty = isatty(2) != 0

    init(total: Int) { self.total = total }

    func line(_ what: String, _ jobElapsed: Double) {
        let elapsed = Date().timeIntervalSince(start)
        let eta: String
        if done == 0 { eta = "eta —" } else {
            let perJob = (elapsed - jobElapsed) / Double(done)
            eta = String(format: "eta ~%.0f s", max(0, perJob * Double(total - done) - jobElapsed))
        }
        let text = String(format: "[%d/%d] %@ — elapsed %.1f s, %@", done + 1, total, what, elapsed, eta)
        RankOutput.write(tty ? "\r\u{1B}[K" + text : text + "\n", fd: 2)
    }

    func run(_ what: String, ranks: Int, _ args: [String], timeout: Int) -> MPILaunch.Result {
        line(what, 0)
        let r = MPILaunch.run(ranks: ranks, args, timeout: timeout, onTick: tty ? { [self] t in line(what, t) } : nil)
        done += 1
        if tty { RankOutput.write("\r\u{1B}[K" + String(format: "[%d/%d] %@ — done in %.1f s\n", done, total, what, r.seconds), fd: 2) }
        return r
    }

    /// Waits until the 1-minute load average drops below `limit` (no wait when nil), showing it.
    func waitForIdle(_ limit: Double?, maxWait: Int) {
        guard let limit else { return }
        let begin = Date()
        while let load = currentLoadAverage(), load >= limit, Date().timeIntervalSince(begin) < Double(maxWait) {
            RankOutput.write(String(format: "%@waiting for the load average to drop below %.2f (now %.2f, waited %.0f s)%@",
                                    tty ? "\r\u{1B}[K" : "", limit, load, Date().timeIntervalSince(begin), tty ? "" : "\n"), fd: 2)
            sleep(tty ? 2 : 10)
        }
    }

    func finish() {
        RankOutput.write(String(format: "sweep: %d jobs in %.1f s\n", done, Date().timeIntervalSince(start)), fd: 2)
    }
}

/// The 1-minute load average from /proc/loadavg.
func currentLoadAverage() -> Double? {
    guard let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) else { return nil }
    return text.split(separator: " ").first.flatMap { Double($0) }
}

/// One tp of the sweep: measured, projected and checked.
struct SweepRow: Codable {
    var tp: Int
    var step: StepResult
    /// Weights each rank holds (plan) and its anonymous memory in the timing job (measured).
    var weightBytesPerRank: Int
    var anonymousBytesMax: Int
    /// Projection from the rate probe with min(tp, cores) ranks busy, shared cores scaled: what
    /// `plan --hardware cpu-measured` gives.
    var projected: Projection
    /// Projection from the rates the same job measured just before timing (same load, same rank count).
    var projectedSameJob: Projection?
    var checkRelative: Double?
    var checkAnonymousBytes: [Int]?
    /// The machine's 1-minute load average when the timed job started (other work shares the cores).
    var loadAverage: Double?
    /// Decode steps (`--decode-context`): measured, projected, error against the fastest step.
    var decodeStep: StepResult?
    var decodeProjected: Projection?
    var decodeProjectedSameJob: Projection?
    var decodeError: Double?
    var decodeErrorSameJob: Double?

    mutating func addDecode(config: MLAConfig, gate: GateLayout, context: Int, path: DecodePath, step: StepResult, rates: MeasuredRates) {
        // The timed steps run at contexts context+1 … context+repeats (the warm-up adds one); plan the middle one.
        let cost = FlopModel.decode(config: config, tp: tp, gate: gate, contexts: [context + 1 + step.repeats / 2], path: path)
        let p = Projection(cost: cost, tokens: 1, config: config, tp: tp, hardware: rates.hardware)
        decodeStep = step
        decodeProjected = p
        decodeError = p.totalSeconds / step.bestSeconds - 1
        if var same = step.rates?.hardware {
            same.cores = nil
            let q = Projection(cost: cost, tokens: 1, config: config, tp: tp, hardware: same)
            decodeProjectedSameJob = q
            decodeErrorSameJob = q.totalSeconds / step.bestSeconds - 1
        }
    }

    /// projected / measured − 1, against the fastest forward (best of the repeats) and the median.
    var error: Double = 0
    var errorVsMedian: Double = 0
    var errorSameJob: Double?

    init(config: MLAConfig, tp: Int, gate: GateLayout, tokens: Int, step: StepResult, rates: MeasuredRates,
         check: (relative: Double, memory: [Int])?) {
        self.tp = tp
        self.step = step
        weightBytesPerRank = ShardingPlan(config: config, tp: tp, gate: gate).bytesPerRank
        anonymousBytesMax = step.ranks.map(\.anonymousBytes).max() ?? 0
        let cost = FlopModel.prefill(config: config, tp: tp, gate: gate, sequenceLengths: [tokens])
        projected = Projection(cost: cost, tokens: tokens, config: config, tp: tp, hardware: rates.hardware)
        if var same = step.rates?.hardware {
            same.cores = nil                   // measured with this job's ranks on these cores: already per-rank
            projectedSameJob = Projection(cost: cost, tokens: tokens, config: config, tp: tp, hardware: same)
        }
        checkRelative = check?.relative
        checkAnonymousBytes = check?.memory
        error = projected.totalSeconds / step.bestSeconds - 1
        errorVsMedian = projected.totalSeconds / step.seconds - 1
        errorSameJob = projectedSameJob.map { $0.totalSeconds / step.bestSeconds - 1 }
    }
}

struct SweepReport: Codable {
    var model: String
    var gate: GateLayout
    var tokens: Int
    /// One probe per count of busy ranks (1 … cores).
    var rates: [MeasuredRates]
    var probeLoadAverage: [Double]
    var rows: [SweepRow]
    /// The same forward projected on one H100 SXM per rank.
    var h100: [Projection]

    func text() -> String {
        var s = "\nmla-tp sweep: model \(model), gate \(gate.rawValue), prefill of \(tokens) tokens, "
        s += "best and median of \(rows.first?.step.repeats ?? 0) forwards (first rank's start to last rank's end)\n"
        for r in rates { s += "rates (probe, \(r.ranks) rank\(r.ranks == 1 ? "" : "s") busy): \(r.hardware.source)\n" }
        s += "\n"
        s += table(["tp", "best", "compute", "allreduce", "median", "projected", "error", "vs median", "error (same-job rates)",
                    "weights/rank", "anon RSS/rank (max)", "max rel. error vs unsharded", "load"], rows.map { r in
            [String(r.tp), formatSeconds(r.step.bestSeconds), formatSeconds(r.step.bestSeconds - r.step.bestAllReduceSeconds),
             formatSeconds(r.step.bestAllReduceSeconds), formatSeconds(r.step.seconds),
             formatSeconds(r.projected.totalSeconds), String(format: "%+.0f%%", 100 * r.error), String(format: "%+.0f%%", 100 * r.errorVsMedian),
             r.errorSameJob.map { String(format: "%+.0f%%", 100 * $0) } ?? "—",
             formatBytes(r.weightBytesPerRank), formatBytes(r.anonymousBytesMax),
             r.checkRelative.map { String(format: "%.2e", $0) } ?? "—", r.loadAverage.map { String(format: "%.2f", $0) } ?? "—"]
        }) + "\n"
        if rows.contains(where: { $0.decodeStep != nil }) {
            let d = rows.compactMap(\.decodeStep).first!
            s += "\nDecode (\(d.decode?.rawValue ?? "?")): one new token after \(d.context ?? 0)+ cached tokens\n"
            s += table(["tp", "best", "compute", "allreduce", "median", "projected", "error", "error (same-job rates)"], rows.compactMap { r in
                guard let st = r.decodeStep, let p = r.decodeProjected else { return nil }
                return [String(r.tp), formatSeconds(st.bestSeconds), formatSeconds(st.bestSeconds - st.bestAllReduceSeconds),
                        formatSeconds(st.bestAllReduceSeconds), formatSeconds(st.seconds), formatSeconds(p.totalSeconds),
                        String(format: "%+.0f%%", 100 * (r.decodeError ?? 0)), r.decodeErrorSameJob.map { String(format: "%+.0f%%", 100 * $0) } ?? "—"]
            }) + "\n"
        }
        s += "error = projected / best − 1 (rates: best of their repeats too); allreduce = mean over ranks, waiting included. Projected on one H100 SXM per rank (BF16): "
        s += zip(rows, h100).map { "tp=\($0.tp) \(formatSeconds($1.totalSeconds))" }.joined(separator: ", ") + "\n"
        return s
    }
}

/// The sweep's SVG figures.
enum SweepFigures {
    static func write(_ report: SweepReport, config: MLAConfig, to dir: String) throws -> [String] {
        var files: [String] = []
        func save(_ name: String, _ svg: String) throws {
            let path = (dir as NSString).appendingPathComponent(name)
            try writeAtomically(Data(svg.utf8), to: path)
            files.append(name)
        }
        for row in report.rows {
            try save("timeline-tp\(row.tp).svg", timeline(row, model: report.model))
        }
        try save("bytes-per-rank.svg", bytesPerRank(config: config, tps: report.rows.map(\.tp), model: report.model))
        try save("time-vs-projection.svg", timeVsProjection(report))
        return files
    }

    static func timeline(_ row: SweepRow, model: String) -> String {
        let step = row.step
        let chart = TimelineChart(
            title: "One forward per rank: \(model), tp=\(row.tp), \(step.tokens) tokens",
            subtitle: String(format: "measured: the fastest of %d forwards (%.1f ms; median %.1f ms); one clock, 0 = the first rank's start",
                             step.repeats, step.bestSeconds * 1e3, step.seconds * 1e3),
            lanes: (0..<step.tp).map { "rank \($0)" },
            segments: step.timeline.map { $0.map { TimelineChart.Segment(kind: $0.kind, start: $0.start * 1e3, end: $0.end * 1e3) } },
            kinds: [("compute", Palette.blue), ("wait", Palette.grey), ("allreduce", Palette.vermillion)], xTitle: "time (ms)")
        return chart.render()
    }

    static func bytesPerRank(config: MLAConfig, tps: [Int], model: String) -> String {
        let ks = Array(Set(tps + [1, 2, 4, 8]).filter { config.numAttentionHeads % $0 == 0 }).sorted()
        let mb = { (gate: GateLayout, k: Int) in Double(ShardingPlan(config: config, tp: k, gate: gate).bytesPerRank) / 1e6 }
        let gateMB = { (gate: GateLayout, k: Int) in
            Double(ShardingPlan(config: config, tp: k, gate: gate).weights.filter { $0.name.contains(".gate.") }.reduce(0) { $0 + $1.bytesPerRank }) / 1e6
        }
        var chart = BarChart(
            title: "Weight bytes per rank: \(model), column vs replicated gate",
            subtitle: "computed from the sharding plan (f32); replicated = replicated-sliced (the merged replicated gate only runs at tp=1)",
            categories: ks.map { "tp=\($0)" },
            series: [.init(name: "column gate: gate", values: ks.map { gateMB(.column, $0) }, color: Palette.sky),
                     .init(name: "column gate: layer", values: ks.map { mb(.column, $0) }, color: Palette.blue),
                     .init(name: "replicated gate: gate", values: ks.map { gateMB(.replicatedSliced, $0) }, color: Palette.orange),
                     .init(name: "replicated gate: layer", values: ks.map { mb(.replicatedSliced, $0) }, color: Palette.vermillion)],
            xTitle: "tensor-parallel size", yTitle: "MB per rank")
        chart.valueLabel = { $0 >= 100 ? String(format: "%.0f", $0) : String(format: "%.1f", $0) }
        chart.frame = Frame(width: 860, height: 460)
        return chart.render()
    }

    static func timeVsProjection(_ report: SweepReport) -> String {
        let rows = report.rows
        var series: [LineChart.Series] = [
            .init(name: "measured (best)", points: rows.map { (log2(Double($0.tp)), $0.step.bestSeconds * 1e3) }, color: Palette.blue),
            .init(name: "measured (median)", points: rows.map { (log2(Double($0.tp)), $0.step.seconds * 1e3) }, color: Palette.sky),
            .init(name: "projected (rate probe)", points: rows.map { (log2(Double($0.tp)), $0.projected.totalSeconds * 1e3) },
                  color: Palette.orange, dashed: true),
        ]
        if rows.allSatisfy({ $0.projectedSameJob != nil }) {
            series.append(.init(name: "projected (same-job rates)", points: rows.map { (log2(Double($0.tp)), $0.projectedSameJob!.totalSeconds * 1e3) },
                                color: Palette.green, dashed: true))
        }
        var chart = LineChart(
            title: "Measured vs projected forward time: \(report.model), \(report.tokens) tokens",
            subtitle: "this machine (\(report.rates.first?.cores ?? 0) cores, f32); projection = roofline per stage + ring allreduce from measured rates",
            series: series, xTitle: "tensor-parallel size (ranks; more ranks than cores share them)", yTitle: "ms per forward",
            xTicks: rows.map { log2(Double($0.tp)) }, xTickLabels: rows.map { String($0.tp) })
        chart.frame = Frame(width: 860, height: 460)
        return chart.render()
    }
}
