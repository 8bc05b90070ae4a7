import Foundation
import Launch
import MLA
import Measure
import Planner
import SafeTensors
import TensorParallel

/// `sweep --layouts`: each layout of the same ranks runs the same batch (a prefill of `context`
/// tokens per sequence, then one decode step) as a real `run` with the check, beside its plan.
public struct LayoutSweepReport: Codable, Sendable {
    public struct Row: Codable, Sendable {
        public var layout: String
        public var run: RunReport
        public var plan: LayoutPlan
        /// Largest cache and anonymous memory over the ranks, and the bytes rank 0 sent.
        public var cachedTokensMax: Int
        public var anonymousBytesMax: Int
        public var bytesSentRank0: Int
    }
    public var model: String
    public var ranks: Int
    public var batch: Int
    public var context: Int
    public var rows: [Row]

    public func text() -> String {
        var s = "\nmla-tp sweep: model \(model), \(ranks) ranks, \(batch) sequences × \(context) cached tokens, then one decode step; "
        s += "each layout a real run checked against the unsharded forward\n\n"
        s += Format.table(["layout", "max rel. error", "cached tokens/rank (max)", "KV/rank (plan)", "anon RSS/rank (max)",
                           "rank 0 sent", "plan: rank 0 sends", "pass on rank 0"], rows.map { r in
            let planned = (r.plan.prefillCollectives + r.plan.decodeCollectives).reduce(0) { $0 + $1.bytes }
            return [r.layout, r.run.check.map { String(format: "%.2e", $0.relative) } ?? "—", "\(r.cachedTokensMax)",
                    Format.bytes(r.plan.kvBytesPerRank), Format.bytes(r.anonymousBytesMax), Format.bytes(r.bytesSentRank0),
                    Format.bytes(planned), Format.seconds(r.run.forwardSeconds)]
        }) + "\n"
        return s
    }
}

extension SweepRunner {
    /// Runs every layout of `ranks` ranks on `batch` sequences of `context + 1` tokens (the last
    /// decoded), with the check; writes `layouts.json` into `out`.
    public func runLayouts(_ layouts: [ParallelLayout], ranks: Int, batch: Int, context: Int,
                           progress: SweepProgress) throws -> LayoutSweepReport {
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        progress.total = layouts.count
        let seqs = Array(repeating: "\(context + 1)", count: batch).joined(separator: ",")
        var rows: [LayoutSweepReport.Row] = []
        for l in layouts {
            progress.waitForIdle(waitForIdle, maxWait: maxWait)
            let r = try job("\(l): \(batch) sequences of \(context) tokens, then a decode step", ranks: ranks,
                            ["run"] + modelArguments + ["--dp", "\(l.dp)", "--dcp", "\(l.dcp)", "--seqs", seqs, "--decode-steps", "1",
                                                        "--check", "--json"], timeout: timeout, progress)
            let report = try JSONDecoder().decode(RunReport.self, from: Data(r.stdout.utf8))
            rows.append(.init(layout: l.description, run: report,
                              plan: try LayoutPlan(config: config, layout: l, gate: gate, context: context, batch: batch),
                              cachedTokensMax: report.ranks.compactMap(\.cachedTokens).max() ?? 0,
                              anonymousBytesMax: report.ranks.map(\.anonymousMemory).max() ?? 0,
                              bytesSentRank0: (report.ranks.first?.communicators ?? []).flatMap(\.kinds).reduce(0) { $0 + $1.bytes }))
        }
        progress.finish()
        let report = LayoutSweepReport(model: model, ranks: ranks, batch: batch, context: context, rows: rows)
        try AtomicFile.write(Data(try Format.json(report).utf8), to: file("layouts.json"))
        return report
    }
}
