import Foundation
import MLA
import Measure
import Planner
import Plot
import SafeTensors
import TensorCore
import TensorParallel

/// The sweep's SVG figures.
public enum SweepFigures {
    /// Writes every figure of `report` into `dir`; returns the file names.
    public static func write(_ report: SweepReport, config: MLAConfig, to dir: String) throws -> [String] {
        var files: [String] = []
        func save(_ name: String, _ svg: String) throws {
            try AtomicFile.write(Data(svg.utf8), to: (dir as NSString).appendingPathComponent(name))
            files.append(name)
        }
        for row in report.rows { try save("timeline-tp\(row.tp).svg", timeline(row, model: report.model, shows: report.shows)) }
        try save("bytes-per-rank.svg", bytesPerRank(config: config, tps: report.rows.map(\.tp), model: report.model,
                                                    precision: report.dtype ?? .f32, quantization: report.quantization))
        try save("time-vs-projection.svg", timeVsProjection(report))
        return files
    }

    /// The colour of each segment kind, in legend order.
    static let palette: [(SegmentKind, String)] = [
        (.q, Palette.blue), (.kv, Palette.sky), (.attention, Palette.green), (.gate, Palette.orange),
        (.oProj, Palette.purple), (.wait, Palette.grey), (.allReduce, Palette.vermillion), (.contextExchange, "#7F3C8D"), (.latentGather, "#B5651D"),
        (.compute, Palette.blue),
    ]

    /// One lane per rank: every stage of the fastest forward, on one clock.
    public static func timeline(_ row: SweepRow, model: String, shows: String) -> String {
        let step = row.step
        let present = Set(step.timeline.flatMap { $0.map(\.kind) })
        let chart = TimelineChart(
            title: "One forward per rank: \(model), tp=\(row.tp), \(step.tokens) tokens",
            subtitle: String(format: "measured: the fastest of %d forwards (%.1f ms; median %.1f ms); one clock, 0 = the first rank's start; ",
                             step.repeats, step.bestSeconds * 1e3, step.seconds * 1e3) + shows,
            lanes: (0..<step.tp).map { "rank \($0)" },
            segments: step.timeline.map { $0.map { TimelineChart.Segment(kind: $0.kind.rawValue, start: $0.start * 1e3, end: $0.end * 1e3) } },
            kinds: palette.filter { present.contains($0.0) }.map { ($0.0.rawValue, $0.1) }, xTitle: "time (ms)")
        return chart.render()
    }

    public static func bytesPerRank(config: MLAConfig, tps: [Int], model: String, precision: Precision = .f32,
                                    quantization: WeightQuantization? = nil) -> String {
        let ks = Array(Set(tps + [1, 2, 4, 8]).filter { config.numAttentionHeads % $0 == 0 }).sorted()
        let plan = { (gate: GateLayout, k: Int) in ShardingPlan(config: config, tp: k, gate: gate, precision: precision, quantization: quantization) }
        let mb = { (gate: GateLayout, k: Int) in Double(plan(gate, k).bytesPerRank) / 1e6 }
        let gateMB = { (gate: GateLayout, k: Int) in
            Double(plan(gate, k).weights.filter { $0.name.contains(".gate.") }.reduce(0) { $0 + $1.bytesPerRank }) / 1e6
        }
        let held = precision.rawValue + (quantization == .fp8 ? " activations, fp8 weights and their scales" : "")
        var chart = BarChart(
            title: "Weight bytes per rank: \(model), column vs replicated gate",
            subtitle: "computed from the sharding plan (\(held)); replicated = replicated-sliced (the merged replicated gate only runs at tp=1)",
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

    public static func timeVsProjection(_ report: SweepReport) -> String {
        let rows = report.rows
        let x = { (r: SweepRow) in log2(Double(r.tp)) }
        var series: [LineChart.Series] = [
            .init(name: "measured (best)", points: rows.map { (x($0), $0.step.bestSeconds * 1e3) }, color: Palette.blue),
            .init(name: "measured (median)", points: rows.map { (x($0), $0.step.seconds * 1e3) }, color: Palette.sky),
            .init(name: "projected (rate probe)", points: rows.map { (x($0), $0.projected.totalSeconds * 1e3) },
                  color: Palette.orange, dashed: true),
        ]
        let same = rows.compactMap { r in r.projectedSameJob.map { (x(r), $0.totalSeconds * 1e3) } }
        if same.count == rows.count {
            series.append(.init(name: "projected (same-job rates)", points: same, color: Palette.green, dashed: true))
        }
        var chart = LineChart(
            title: "Measured vs projected forward time: \(report.model), \(report.tokens) tokens",
            subtitle: "this machine (\(report.rates.first?.cores ?? 0) cores); \(report.shows); projection = roofline per stage + ring allreduce from measured rates",
            series: series, xTitle: "tensor-parallel size (ranks; more ranks than cores share them)", yTitle: "ms per forward",
            xTicks: rows.map(x), xTickLabels: rows.map { String($0.tp) })
        chart.frame = Frame(width: 860, height: 460)
        return chart.render()
    }
}
