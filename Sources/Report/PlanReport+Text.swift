import ExitClass
import Foundation
import MLA
import Planner
import TensorCore

extension PlanReport {
    public func text() -> String {
        let T = prefill.tokens, B = sequenceLengths.count, type = (dtype ?? .f32).rawValue
        let batch = B == 1 ? "\(T) tokens" : "\(T) tokens in \(B) sequences \(sequenceLengths)"
        var s = "mla-tp plan: model \(OutsideText.escaped(model)), tp=\(tp), gate \(gate.rawValue)\(gated ? "" : " (ungated)"), prefill \(batch); "
        s += "decode: one new token after \(B == 1 ? "\(T)" : "\(sequenceLengths)") cached\n"
        if !plan.runs {
            s += "NOTE: the replicated gate does not run at tp=\(tp) (its [T, H·v] output cannot multiply a rank's [T, H/tp·v] heads) — "
            s += "use --gate column\n"
        }
        if let hp = plan.paddedHeads {
            s += "NOTE: tp=\(tp) does not divide the \(plan.modelHeads ?? 0) heads: planned padded to \(hp) with zero heads (as run --pad-heads holds them), "
            s += "waste over the job: \(Format.bytes(plan.paddingBytes)) of zero weights, \(Format.gflop(paddingPrefillFlops ?? 0)) GFLOP of the prefill\n"
        }
        s += "\nWeights (\(type), per rank)\n" + plan.weightTable() + "\n"

        s += "\nGate layouts at tp=\(tp) (prefill of \(T) tokens)\n"
        let maxGate = gates.map(\.gateBytesPerRank).max() ?? 1
        s += Format.table(["layout", "gate bytes/rank", "", "all weights/rank", "gate GFLOP", "forward GFLOP", "runs at tp=\(tp)"], gates.map {
            [$0.layout.rawValue, Format.bytes($0.gateBytesPerRank), Format.bar(Double($0.gateBytesPerRank), of: Double(maxGate), width: 24),
             Format.bytes($0.bytesPerRank), Format.gflop($0.gateFlops), Format.gflop($0.prefillFlops), $0.runs ? "yes" : "NO (shape mismatch)"]
        }) + "\n"

        s += "\nGate forms at tp=\(tp) (column split; prefill of \(T) tokens): a head-wise gate is one value per head, v times smaller\n"
        s += Format.table(["form", "gate bytes/rank", "gate GFLOP", "all weights/rank", "forward GFLOP"], gateForms.map {
            ["\($0.granularity.rawValue)-wise, \($0.placement.rawValue)", Format.bytes($0.gateBytesPerRank), Format.gflop($0.gateFlops),
             Format.bytes($0.bytesPerRank), Format.gflop($0.prefillFlops)]
        }) + "\n"

        s += "\nFLOPs per rank (exactly what the forward counts; bytes = \(type) operands read + results written)\n"
        let naive = decode.first { $0.path == .naive }!, absorbed = decode.first { $0.path == .absorbed }!
        var names: [String] = []
        for st in prefill.stages + naive.cost.stages + absorbed.cost.stages where !names.contains(st.name) { names.append(st.name) }
        func cell(_ cost: CostReport, _ n: String, perToken: Bool) -> String {
            guard let st = cost.stages.first(where: { $0.name == n }) else { return "—" }
            return perToken ? Format.mflop(st.flopsPerToken) : Format.gflop(st.flops)
        }
        s += Format.table(["stage", "prefill GFLOP (\(T) tok)", "MFLOP/token", "decode naive MFLOP/token", "decode absorbed MFLOP/token"],
                   names.map { [$0, cell(prefill, $0, perToken: false), cell(prefill, $0, perToken: true),
                                cell(naive.cost, $0, perToken: true), cell(absorbed.cost, $0, perToken: true)] }
                   + [["total", Format.gflop(prefill.totalFlops), Format.mflop(Double(prefill.totalFlops) / Double(max(T, 1))),
                       Format.mflop(Double(naive.cost.totalFlops) / Double(max(B, 1))), Format.mflop(Double(absorbed.cost.totalFlops) / Double(max(B, 1)))],
                      ["bytes", Format.bytes(prefill.bytes), Format.bytes(T > 0 ? prefill.bytes / T : 0),
                       Format.bytes(naive.bytesPerToken), Format.bytes(absorbed.bytesPerToken)]]) + "\n"
        s += "(projections \(Format.gflop(prefill.projectionFlops)) + attention \(Format.gflop(prefill.attentionFlops)) GFLOP in the prefill; "
        s += "attention runs queries in blocks of \(FlopModel.queryBlockRows) rows)\n"

        s += "\nKV cache (MLA latent + k_rope per token, replicated on every rank) in \(kvCache.dtype) (--kv-cache-dtype): "
        s += "\(Format.bytes(kvCache.bytesPerToken)) per token, \(Format.bytes(kvCache.bytesAfterPrefill)) after the prefill's \(T) tokens "
        s += "(per token: " + kvCache.everyDType.map { "\($0.dtype) \(Format.bytes($0.bytesPerToken))" }.joined(separator: ", ") + ")\n"
        s += "Activations per rank (the forward's buffers, as bench counts them): \(Format.bytes(activations.prefillBytes)) for the prefill's "
        s += "\(T) tokens; a decode step of \(sequenceLengths.count) sequences \(Format.bytes(activations.decodeStepBytes)) with the cache\n"
        if tp > 1 {
            s += "Collective per forward: 1 allreduce of [\(T), hidden] \(type) = \(Format.bytes(collective.prefillBytes)) "
            s += "(ring: 2(p−1)/p·n = \(Format.bytes(collective.prefillRingBytesPerRank)) sent per rank); "
            s += "decode step: \(Format.bytes(collective.decodeBytes)) (\(Format.bytes(collective.decodeRingBytesPerRank)) per rank)\n"
        } else {
            s += "Collective per forward: none (tp=1)\n"
        }

        if let p = projection {
            s += "\nProjection on \(p.hardware.name) (\(p.hardware.source))\n"
            s += "roofline per stage: max(FLOPs / \(Format.rate(p.hardware.flopsPerSecond, "FLOP/s")), bytes / \(Format.rate(p.hardware.memoryBytesPerSecond, "B/s"))) "
            s += "at \(p.hardware.bytesPerElement) B/element"
            if p.hardware.share(tp: tp) < 1 { s += String(format: ", each rank gets %.2f of a core (%d ranks on %d cores)", p.hardware.share(tp: tp), tp, p.hardware.cores ?? 0) }
            s += "; ring allreduce 2(p−1)/p·n / \(Format.rate(p.hardware.linkBytesPerSecond, "B/s")) + 2(p−1) × \(String(format: "%.2f µs", p.hardware.linkLatencySeconds * 1e6))\n"
            let runs: [(String, Projection)] = [("prefill \(T) tok", p.prefill)]
                + DecodePath.allCases.compactMap { path in p.decode[path.rawValue].map { ("decode \(path.rawValue)", $0) } }
            var stageNames: [String] = []
            for (_, pr) in runs { for st in pr.stages where !stageNames.contains(st.name) { stageNames.append(st.name) } }
            s += Format.table(["stage"] + runs.map(\.0), stageNames.map { n in
                [n] + runs.map { _, pr in pr.stages.first { $0.name == n }.map { "\(Format.seconds($0.seconds)) \($0.bound == .compute ? "C" : "M")" } ?? "—" }
            } + [["allreduce"] + runs.map { Format.seconds($0.1.allReduceSeconds) },
                 ["compute"] + runs.map { Format.seconds($0.1.computeSeconds) },
                 ["total"] + runs.map { Format.seconds($0.1.totalSeconds) }]) + "\n"
            s += "(C: compute-bound, M: memory-bound)\n"
        }
        return s
    }
}
