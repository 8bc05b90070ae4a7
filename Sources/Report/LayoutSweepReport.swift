import ExitClass
import Foundation
import MLA
import Measure
import Planner
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

        public init(layout: String, run: RunReport, plan: LayoutPlan, cachedTokensMax: Int, anonymousBytesMax: Int, bytesSentRank0: Int) {
            (self.layout, self.run, self.plan) = (layout, run, plan)
            (self.cachedTokensMax, self.anonymousBytesMax, self.bytesSentRank0) = (cachedTokensMax, anonymousBytesMax, bytesSentRank0)
        }
    }
    public var model: String
    public var ranks: Int
    public var batch: Int
    public var context: Int
    public var rows: [Row]

    public init(model: String, ranks: Int, batch: Int, context: Int, rows: [Row]) {
        (self.model, self.ranks, self.batch, self.context, self.rows) = (model, ranks, batch, context, rows)
    }

    public func text() -> String {
        var s = "\nmla-tp sweep: model \(OutsideText.escaped(model)), \(ranks) ranks, \(batch) sequences × \(context) cached tokens, then one decode step; "
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
