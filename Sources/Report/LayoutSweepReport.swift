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
        /// The plan's prefill and decode step on the probe's rates (`plan --hardware cpu-measured`),
        /// compute + communication, against the run's pass on rank 0 (nil in reports made before).
        public var projectedSeconds: Double?
        public var projectedPrefillSeconds: Double?
        public var projectedDecodeSeconds: Double?
        /// When the projection misses the pass by more than 20%: the stage that missed most.
        public var miss: StageMiss?

        /// Projected over measured, less one: +0.2 is a projection 20% slower than the run.
        public var projectionError: Double? {
            projectedSeconds.map { $0 / max(run.forwardSeconds, 1e-12) - 1 }
        }

        /// Projects the plan's prefill and decode step on `hardware`.
        public mutating func project(config: MLAConfig, hardware: Hardware) {
            let f = plan.seconds(plan.prefill, plan.prefillCollectives, config: config, hardware: hardware)
            let d = plan.seconds(plan.decode, plan.decodeCollectives, config: config, hardware: hardware)
            (projectedPrefillSeconds, projectedDecodeSeconds) = (f.compute + f.communication, d.compute + d.communication)
            projectedSeconds = f.compute + f.communication + d.compute + d.communication
            miss = StageMiss.largest(self, config: config, hardware: hardware)
        }

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
    /// The rates the projections used (nil in reports made before).
    public var rates: MeasuredRates?

    public init(model: String, ranks: Int, batch: Int, context: Int, rows: [Row]) {
        (self.model, self.ranks, self.batch, self.context, self.rows) = (model, ranks, batch, context, rows)
    }

    public func text() -> String {
        var s = "\nmla-tp sweep: model \(OutsideText.escaped(model)), \(ranks) ranks, \(batch) sequences × \(context) cached tokens, then one decode step; "
        s += "each layout a real run checked against the unsharded forward\n\n"
        s += Format.table(["layout", "max rel. error", "cached tokens/rank (max)", "KV/rank (plan)", "anon RSS/rank (max)",
                           "rank 0 sent", "plan: rank 0 sends", "pass on rank 0", "projected", "error"], rows.map { r in
            let planned = (r.plan.prefillCollectives + r.plan.decodeCollectives).reduce(0) { $0 + $1.bytes }
            return [r.layout, r.run.check.map { String(format: "%.2e", $0.relative) } ?? "—", "\(r.cachedTokensMax)",
                    Format.bytes(r.plan.kvBytesPerRank), Format.bytes(r.anonymousBytesMax), Format.bytes(r.bytesSentRank0),
                    Format.bytes(planned), Format.seconds(r.run.forwardSeconds), r.projectedSeconds.map(Format.seconds) ?? "—",
                    r.projectionError.map { String(format: "%+.0f%%", $0 * 100) } ?? "—"]
        }) + "\n"
        if let hw = rates?.hardware(for: rows.first?.run.dtype ?? .f32) {
            s += "projected: the plan's prefill and decode step (compute + communication) on \(hw.source); error = projected / pass − 1, "
            let passes = rows.first?.run.passes ?? 1
            s += passes > 1 ? "the pass: the fastest of \(passes) (prefill + one decode step on rank 0)\n"
                            : "one pass each (prefill + one decode step on rank 0), so the error includes that pass's noise\n"
        }
        for r in rows { if let miss = r.miss { s += "\(r.layout) misses by more than 20%; furthest off: \(miss.text)\n" } }
        return s
    }
}
