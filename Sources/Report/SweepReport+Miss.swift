import MLA
import Measure
import Planner

/// Where a projection that misses its measurement misses: the forward stage whose projected
/// time is furthest from the time it took in the fastest measured forward (on the rank that
/// spent longest in it).
public struct StageMiss: Codable, Sendable, Equatable {
    /// The forward's stage as the timelines name it (q, kv, attention, gate, o_proj, allreduce).
    public var stage: String
    public var projectedSeconds: Double
    public var measuredSeconds: Double

    /// The forward stage a projection stage runs in: the projections by their layer, attention
    /// (with a decode's expansion or absorption of the cache) in `attention`.
    static func stage(of projection: String) -> SegmentKind {
        switch projection {
        case "q_a_proj", "q_b_proj", "q_proj": .q
        case "kv_a_proj_with_mqa", "kv_b_proj": .kv
        case "gate": .gate
        case "o_proj": .oProj
        default: .attention                // attention, attention (absorbed), kv_b_proj (cache)
        }
    }

    /// nil when `projection` is within `tolerance` of `step`'s best forward; otherwise the stage
    /// with the largest gap between its projected time and the slowest rank's time in it in that
    /// forward (the allreduce, with its wait, counted as one stage).
    public static func largest(_ projection: Projection, step: StepResult, tolerance: Double = 0.2) -> StageMiss? {
        var projected: [String: Double] = [SegmentKind.allReduce.rawValue: projection.allReduceSeconds]
        for s in projection.stages { projected[stage(of: s.name).rawValue, default: 0] += s.seconds }
        var measured: [String: Double] = [:]
        for rank in step.timeline {
            var mine: [String: Double] = [:]
            for seg in rank where seg.kind != .compute {
                mine[(seg.kind == .wait ? .allReduce : seg.kind).rawValue, default: 0] += seg.end - seg.start
            }
            for (k, v) in mine { measured[k] = max(measured[k] ?? 0, v) }
        }
        return largest(projected: projected, projectedTotal: projection.totalSeconds, measured: measured,
                       measuredTotal: step.bestSeconds, tolerance: tolerance)
    }

    /// The same for a layout sweep's row: its plan's prefill and decode step, part by part,
    /// against rank 0's stages in the run's fastest pass (nil when that run recorded none).
    public static func largest(_ row: LayoutSweepReport.Row, config: MLAConfig, hardware: Hardware, tolerance: Double = 0.2) -> StageMiss? {
        guard let measured = row.run.stageSeconds, let total = row.projectedSeconds else { return nil }
        var projected: [String: Double] = [:]
        let plan = row.plan
        for part in plan.stageSeconds(plan.prefill, plan.prefillCollectives, config: config, hardware: hardware)
            + plan.stageSeconds(plan.decode, plan.decodeCollectives, config: config, hardware: hardware) {
            // A served prefill expands the cached latents through kv_b_proj inside its attention stage.
            let kind = part.name == "kv_b_proj" ? SegmentKind.attention : stage(of: part.name)
            projected[part.collective ? part.name : kind.rawValue, default: 0] += part.seconds
        }
        var folded: [String: Double] = [:]
        for (k, v) in measured { folded[k == SegmentKind.wait.rawValue ? SegmentKind.allReduce.rawValue : k, default: 0] += v }
        return largest(projected: projected, projectedTotal: total, measured: folded, measuredTotal: row.run.forwardSeconds, tolerance: tolerance)
    }

    /// nil when the totals are within `tolerance`; otherwise the stage with the largest gap.
    static func largest(projected: [String: Double], projectedTotal: Double, measured: [String: Double], measuredTotal: Double,
                        tolerance: Double) -> StageMiss? {
        guard measuredTotal > 0, abs(projectedTotal / measuredTotal - 1) > tolerance else { return nil }
        let gap = { (k: String) in abs((projected[k] ?? 0) - (measured[k] ?? 0)) }
        guard let worst = Set(projected.keys).union(measured.keys).max(by: { gap($0) < gap($1) }) else { return nil }
        return StageMiss(stage: worst, projectedSeconds: projected[worst] ?? 0, measuredSeconds: measured[worst] ?? 0)
    }

    /// `stage: projected X, measured Y` for the report.
    public var text: String {
        "\(stage): projected \(Format.seconds(projectedSeconds)), measured \(Format.seconds(measuredSeconds))"
    }
}
