import ExitClass
import Foundation
import MLA
import Measure
import Planner
import TensorCore
import TensorParallel

/// One tp of the sweep: measured, projected and checked.
public struct SweepRow: Codable, Sendable {
    public var tp: Int
    public var step: StepResult
    /// Weights the busiest rank holds in the timing job, in the precision and quantization it ran
    /// (measured: the layer's own count), and its anonymous memory there (measured).
    public var weightBytesPerRank: Int
    public var anonymousBytesMax: Int
    /// Projection from the rate probe with min(tp, cores) ranks busy, shared cores scaled: what
    /// `plan --hardware cpu-measured` gives.
    public var projected: Projection
    /// Projection from the rates the same job measured just before timing (same load, same rank count).
    public var projectedSameJob: Projection?
    public var checkRelative: Double?
    public var checkAnonymousBytes: [Int]?
    /// bf16 sweeps: whether the check run's output equals tp = 1 in bf16 bit for bit (and how many
    /// elements differ), and its error against the unsharded f32 forward.
    public var bitIdentical: Bool?
    public var differingElements: Int?
    public var checkF32Relative: Double?
    /// The machine's 1-minute load average when the timed job started (other work shares the cores).
    public var loadAverage: Double?
    /// Decode steps (`--decode-context`): measured, projected, error against the fastest step.
    public var decodeStep: StepResult?
    public var decodeProjected: Projection?
    public var decodeProjectedSameJob: Projection?
    public var decodeError: Double?
    public var decodeErrorSameJob: Double?
    /// projected / measured − 1, against the fastest forward (best of the repeats) and the median.
    public var error: Double = 0
    public var errorVsMedian: Double = 0
    public var errorSameJob: Double?
    /// Where the prefill's and the decode step's projections miss by more than 20% (nil: within it).
    public var prefillMiss: StageMiss?
    public var decodeMiss: StageMiss?

    /// The timed prefill, projected with the probe's rates and with the same job's, and the check run's report.
    /// `holding` gives the hardware the model's weight and cache bytes (`Hardware.holding`).
    public init(config: MLAConfig, tp: Int, gate: GateLayout, tokens: Int, step: StepResult, rates: MeasuredRates, check: RunReport?,
                mode: ForwardMode = .default, precision: Precision = .f32, holding: (Hardware) -> Hardware = { $0 }) throws {
        self.tp = tp
        self.step = step
        weightBytesPerRank = step.ranks.map(\.weightBytes).max() ?? ShardingPlan(config: config, tp: tp, gate: gate).bytesPerRank
        anonymousBytesMax = step.ranks.map(\.anonymousBytes).max() ?? 0
        let cost = try FlopModel.prefill(config: config, tp: tp, gate: gate, sequenceLengths: [tokens], mode: mode)
        let p = SweepRow.projections(cost: cost, tokens: tokens, config: config, tp: tp, rates: rates, step: step, precision: precision,
                                     holding: holding)
        projected = p.probe
        projectedSameJob = p.sameJob
        checkRelative = check?.check.map { Double($0.relative) }
        checkAnonymousBytes = check?.ranks.map(\.anonymousMemory)
        bitIdentical = check?.precisionCheck?.bitIdentical
        differingElements = check?.precisionCheck?.differingElements
        checkF32Relative = check?.precisionCheck.map { Double($0.f32.relative) }
        error = SweepRow.error(projected, step.bestSeconds)
        errorVsMedian = SweepRow.error(projected, step.seconds)
        errorSameJob = projectedSameJob.map { SweepRow.error($0, step.bestSeconds) }
        prefillMiss = StageMiss.largest(projected, step: step)
    }

    /// Adds timed decode steps after `context` cached tokens and their projections.
    public mutating func addDecode(config: MLAConfig, gate: GateLayout, context: Int, path: DecodePath, step: StepResult, rates: MeasuredRates,
                                   precision: Precision = .f32, holding: (Hardware) -> Hardware = { $0 }) throws {
        // The timed steps run at contexts context+1 … context+repeats (the warm-up adds one); plan the middle one.
        let cost = try FlopModel.decode(config: config, tp: tp, gate: gate, contexts: [context + 1 + step.repeats / 2], path: path)
        let p = SweepRow.projections(cost: cost, tokens: 1, config: config, tp: tp, rates: rates, step: step, precision: precision, holding: holding)
        decodeStep = step
        decodeProjected = p.probe
        decodeProjectedSameJob = p.sameJob
        decodeError = SweepRow.error(p.probe, step.bestSeconds)
        decodeErrorSameJob = p.sameJob.map { SweepRow.error($0, step.bestSeconds) }
        decodeMiss = StageMiss.largest(p.probe, step: step)
    }

    /// The projection error: projected / measured − 1.
    public static func error(_ p: Projection, _ measured: Double) -> Double { p.totalSeconds / measured - 1 }

    /// `cost` projected with the probe's rates (shared cores scaled) and, when the step measured
    /// its own rates just before timing, with those (already per rank: no core scaling): each at
    /// the rate of the kernel `precision`'s projections run on (`MeasuredRates.hardware(for:)`).
    static func projections(cost: FlopModel.Cost, tokens: Int, config: MLAConfig, tp: Int, rates: MeasuredRates,
                            step: StepResult, precision: Precision, holding: (Hardware) -> Hardware) -> (probe: Projection, sameJob: Projection?) {
        let probe = Projection(cost: cost, tokens: tokens, config: config, tp: tp, hardware: holding(rates.hardware(for: precision)))
        guard var same = step.rates.map({ holding($0.hardware(for: precision)) }) else { return (probe, nil) }
        same.cores = nil
        return (probe, Projection(cost: cost, tokens: tokens, config: config, tp: tp, hardware: same))
    }
}

/// Everything a sweep measured (`sweep.json`).
public struct SweepReport: Codable, Sendable {
    public var model: String
    public var gate: GateLayout
    public var tokens: Int
    /// What the layer ran in (nil: f32).
    public var dtype: Precision?
    /// `--quantization` (nil: none), the latent cache's dtype where the sweep decoded, and which
    /// kernels ran the prefill's GEMMs on the machine that swept (`GemmRoutes.prefill`): what the
    /// figures say they show.
    public var quantization: WeightQuantization?
    public var cacheDType: KVCacheDType?
    public var kernels: String?
    /// `invariant` under `--invariant` (nil: the default mode).
    public var mode: ForwardMode?
    /// One probe per count of busy ranks (1 … cores).
    public var rates: [MeasuredRates]
    public var probeLoadAverage: [Double]
    public var rows: [SweepRow]
    /// The same forward projected on one H100 SXM per rank.
    public var h100: [Projection]

    public init(model: String, gate: GateLayout, tokens: Int, rates: [MeasuredRates], probeLoadAverage: [Double],
                rows: [SweepRow], h100: [Projection]) {
        self.model = model
        self.gate = gate
        self.tokens = tokens
        self.rates = rates
        self.probeLoadAverage = probeLoadAverage
        self.rows = rows
        self.h100 = h100
    }

    public func text() -> String {
        let fs = Format.seconds, pct = Format.percent
        var s = "\nmla-tp sweep: model \(OutsideText.escaped(model)), gate \(gate.rawValue), \(mode == .invariant ? "invariant mode, " : "")prefill of \(tokens) tokens, "
        s += "best and median of \(rows.first?.step.repeats ?? 0) forwards (first rank's start to last rank's end)\n"
        // The rates the rows are projected at: the GEMM named is the one this precision's products ran on.
        for r in rates { s += "rates (probe, \(r.ranks) rank\(r.ranks == 1 ? "" : "s") busy): \(r.hardware(for: dtype ?? .f32).source)\n" }
        s += "\n"
        s += Format.table(["tp", "best", "compute", "allreduce", "median", "projected", "error", "vs median", "error (same-job rates)",
                           "weights/rank", "anon RSS/rank (max)", "max rel. error vs unsharded", "load"], rows.map { r in
            [String(r.tp), fs(r.step.bestSeconds), fs(r.step.bestSeconds - r.step.bestAllReduceSeconds), fs(r.step.bestAllReduceSeconds),
             fs(r.step.seconds), fs(r.projected.totalSeconds), pct(r.error), pct(r.errorVsMedian), r.errorSameJob.map(pct) ?? "—",
             Format.bytes(r.weightBytesPerRank), Format.bytes(r.anonymousBytesMax),
             r.checkRelative.map { String(format: "%.2e", $0) } ?? "—", r.loadAverage.map { String(format: "%.2f", $0) } ?? "—"]
        }) + "\n"
        if let dtype {
            s += "\nThe check in \(dtype) (the \(dtype) output against the unsharded forward in \(dtype), i.e. tp = 1 in \(dtype), and in f32)\n"
            s += Format.table(["tp", "rel. error vs tp=1 \(dtype)", "bit-identical to tp=1", "rel. error vs f32"], rows.map { r in
                [String(r.tp), r.checkRelative.map { String(format: "%.2e", $0) } ?? "—",
                 r.bitIdentical.map { $0 ? "yes" : "no (\(r.differingElements ?? 0) differ)" } ?? "—",
                 r.checkF32Relative.map { String(format: "%.2e", $0) } ?? "—"]
            }) + "\n"
        }
        if let d = rows.compactMap(\.decodeStep).first {
            s += "\nDecode (\(d.decode?.rawValue ?? "?")): one new token after \(d.context ?? 0)+ cached tokens\n"
            s += Format.table(["tp", "best", "compute", "allreduce", "median", "projected", "error", "error (same-job rates)"], rows.compactMap { r in
                guard let st = r.decodeStep, let p = r.decodeProjected else { return nil }
                return [String(r.tp), fs(st.bestSeconds), fs(st.bestSeconds - st.bestAllReduceSeconds), fs(st.bestAllReduceSeconds),
                        fs(st.seconds), fs(p.totalSeconds), pct(r.decodeError ?? 0), r.decodeErrorSameJob.map(pct) ?? "—"]
            }) + "\n"
        }
        s += "error = projected / best − 1 (rates: best of their repeats too); allreduce = mean over ranks, waiting included. Projected on one H100 SXM per rank (BF16): "
        s += zip(rows, h100).map { "tp=\($0.tp) \(fs($1.totalSeconds))" }.joined(separator: ", ") + "\n"
        for r in rows {
            if let m = r.prefillMiss { s += "tp=\(r.tp) prefill misses by more than 20%; the stage furthest off is \(m.text)\n" }
            if let m = r.decodeMiss { s += "tp=\(r.tp) decode misses by more than 20%; the stage furthest off is \(m.text)\n" }
        }
        return s
    }
}

extension SweepReport {
    /// What the figures show, for their subtitles: precision, weights, cache, kernels, gate layout.
    public var shows: String {
        var parts = [(dtype ?? .f32).rawValue + (quantization == .fp8 ? " activations, fp8 weights" : "")]
        if mode == .invariant { parts.insert("invariant mode", at: 0) }
        if let cacheDType { parts.append("\(cacheDType.rawValue) cache") }
        if let kernels { parts.append(kernels) }
        parts.append("gate \(gate.rawValue)")
        return parts.joined(separator: ", ")
    }
}

/// Which kernels run a layer's GEMMs on this machine, in words.
public enum GemmRoutes {
    /// The prefill's projections for weights held as `quantization` with activations in `precision`.
    public static func prefill(precision: Precision, quantization: WeightQuantization?) -> String {
        let native = OneDNN.bf16Support == .native
        switch (precision, quantization ?? .none) {
        case (.f32, .none): return "OpenBLAS sgemm"
        case (_, .fp8): return native ? "fp8 tiles dequantized to bf16, oneDNN matmul"
                                      : "fp8 tiles widened to f32, OpenBLAS sgemm (oneDNN's bf16 \(OneDNN.bf16Support.rawValue) here)"
        case (.bf16, .none): return native ? "oneDNN bf16 matmul" : "bf16 widened to f32, OpenBLAS sgemm (oneDNN's bf16 \(OneDNN.bf16Support.rawValue) here)"
        }
    }
}
