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
        guard step.bestSeconds > 0, abs(projection.totalSeconds / step.bestSeconds - 1) > tolerance else { return nil }
        var projected: [SegmentKind: Double] = [.allReduce: projection.allReduceSeconds]
        for s in projection.stages { projected[stage(of: s.name), default: 0] += s.seconds }
        var measured: [SegmentKind: Double] = [:]
        for rank in step.timeline {
            var mine: [SegmentKind: Double] = [:]
            for seg in rank {
                let kind: SegmentKind = seg.kind == .wait ? .allReduce : seg.kind
                mine[kind, default: 0] += seg.end - seg.start
            }
            for (k, v) in mine { measured[k] = max(measured[k] ?? 0, v) }
        }
        let kinds = Set(projected.keys).union(measured.keys).filter { $0 != .compute }
        guard let worst = kinds.max(by: { abs((projected[$0] ?? 0) - (measured[$0] ?? 0)) < abs((projected[$1] ?? 0) - (measured[$1] ?? 0)) })
        else { return nil }
        return StageMiss(stage: worst.rawValue, projectedSeconds: projected[worst] ?? 0, measuredSeconds: measured[worst] ?? 0)
    }

    /// `stage: projected X, measured Y` for the report.
    public var text: String {
        "\(stage): projected \(Format.seconds(projectedSeconds)), measured \(Format.seconds(measuredSeconds))"
    }
}
