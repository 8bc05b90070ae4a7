import ExitClass
import Foundation
import MLA
import Measure
import TensorParallel

extension BenchReport {
    public func json() throws -> String { try Format.json(self) }

    // MARK: text

    static func ms(_ s: Double) -> String { String(format: s < 0.01 ? "%.3f" : "%.1f", s * 1e3) }
    static func range(_ s: Samples) -> String { "\(ms(s.median)) [\(ms(s.min))–\(ms(s.max))]" }
    static func rate(_ r: Double) -> String { String(format: "%.1f", r / 1e9) }
    static func mb(_ n: Int) -> String { String(format: "%.1f", Double(n) / 1e6) }

    public func text() -> String {
        var s = "mla-tp bench: model \(OutsideText.escaped(model)), tp=\(tp), gate \(gate.rawValue), \(localHeads) of \(heads) heads per rank, "
        s += "\(blasThreads.first ?? 1) BLAS thread\(blasThreads.first == 1 ? "" : "s") per rank, \(cpus) CPUs, "
        s += "load average \(loadAverage.map { String(format: "%.2f", $0) } ?? "unknown") at start\n"
        if let dtype {
            s += "\(dtype) weights and activations, allreduce in \(allReduceDType ?? dtype); oneDNN's bf16 on this CPU: \(oneDNNBF16 ?? "?")"
            if let t = torchBaseline { s += String(format: "; PyTorch %@ bf16 + gloo baseline: %.1f ms (slowest rank's median)", t.torch, t.seconds * 1e3) }
            s += "\n"
        }
        s += "\(warmup) warm-up + 1 for memory + \(repeats) timed forward\(repeats == 1 ? "" : "s") per phase; times are median [min–max] in ms; "
        s += "cpu is the rank's CPU time per forward (well below the forward's wall time: the core was busy with other work)\n"
        if let latent {
            s += "latent projections (q_a_proj, kv_a_proj_with_mqa): \(latent == .column ? "column-sharded, 1/tp of their outputs per rank" : "sequence-parallel, a prefill's 1/tp of the tokens per rank"), "
            s += "then one all-gather of the latent (the latent stage below; --latent-proj \(latent))\n"
        }
        if mode == .invariant {
            s += "invariant mode (--invariant); the default mode's same phases, measured first in this run:"
            for (name, phase) in [("prefill", Phase.prefill), ("decode step", .decode)] {
                guard let (fixed, plain) = Self.invariantCost(ranks, phase) else { continue }
                s += " \(name) \(Self.ms(fixed)) ms invariant vs \(Self.ms(plain)) ms default (\(String(format: "%.2f", fixed / max(plain, 1e-12)))×);"
            }
            s += "\n"
        }
        if let p = ranks.first?.prefill { s += "\n" + prefillText(p) }
        if let d = ranks.first?.decode { s += "\n" + decodeText(d) }
        s += "\nMemory per rank (MB; budget = 1.1 × weights + activations [+ KV cache])\n"
        var rows: [[String]] = []
        for r in ranks {
            for (name, p) in [("prefill", r.prefill), ("decode", r.decode)] {
                guard let m = p?.memory else { continue }
                rows.append(["\(r.rank)", name, Self.mb(m.anonymousBytes), Self.mb(m.pssBytes), Self.mb(r.runtimeAnonymousBytes),
                             Self.mb(m.shardBytes) + " + " + Self.mb(m.replicatedBytes), Self.mb(m.activationBytes),
                             Self.mb(m.budgetBytes), Self.mb(max(0, m.peakDuringTimedBytes - m.rssBeforeTimedBytes)),
                             Self.mb(m.fullLayerBytes)])
            }
        }
        s += Format.table(["rank", "phase", "anon RSS", "PSS", "runtime", "shard + replicated", "activations", "budget",
                    "peak growth in timed", "full layer"], rows) + "\n"
        s += "\nTargets (worst rank)\n"
        s += Format.table(["target", "phase", "measured", "bound", "verdict"], targets.map {
            [$0.name, $0.phase.rawValue, String(format: "%.3f", $0.value), ($0.atLeast ? "≥ " : "≤ ") + String(format: "%.2f", $0.bound), $0.verdict]
        }) + "\n"
        return s
    }

    /// The markdown header of `markdown()`'s rows.
    public static let markdownHeader = """
        | model | tp | phase | tokens | forward ms, median [min–max] | compute ms | allreduce ms (raw MPI) | GFLOP/s (of sgemm) | weight GB/s (of memcpy) | anon RSS / budget MB | load |
        |---|---|---|---|---|---|---|---|---|---|---|
        """

    /// One row per phase: the slowest rank's times, the worst rank's ratios, the largest memory.
    public func markdown() -> String {
        var lines = [Self.markdownHeader]
        for (name, results) in [("prefill", ranks.compactMap(\.prefill)), ("decode", ranks.compactMap(\.decode))] {
            guard let slowest = results.max(by: { $0.totalSeconds.median < $1.totalSeconds.median }) else { continue }
            let tokens = name == "prefill" ? "\(slowest.tokensPerForward)"
                : "\(slowest.sequences)×1 @ \(slowest.contextFirst ?? 0) cached"
            let reduce: String
            if tp > 1, let worst = results.max(by: { $0.allReduceSeconds.median < $1.allReduceSeconds.median }) {
                reduce = "\(Self.ms(worst.allReduceSeconds.median)) (\(worst.rawAllReduceSeconds.map { Self.ms($0.median) } ?? "–"))"
            } else {
                reduce = "–"
            }
            let gemm = results.compactMap { r in r.gemmEfficiency.map { (r.flopsPerSecond, $0) } }.min { $0.1 < $1.1 }
            let rate = gemm.map { String(format: "%.1f (%.0f%%)", $0.0 / 1e9, 100 * $0.1) } ?? Self.rate(slowest.flopsPerSecond)
            let band = results.compactMap { r -> (Double, Double)? in
                guard let w = r.weightBytesPerSecond, let e = r.bandwidthEfficiency else { return nil }
                return (w, e)
            }.min { $0.1 < $1.1 }
            let bandwidth = band.map { String(format: "%.1f (%.0f%%)", $0.0 / 1e9, 100 * $0.1) } ?? "–"
            let memory = results.max { $0.memory.anonymousBytes < $1.memory.anonymousBytes }.map {
                "\(Self.mb($0.memory.anonymousBytes)) / \(Self.mb($0.memory.budgetBytes))"
            } ?? "–"
            lines.append("| \(OutsideText.escaped(model)) | \(tp) | \(name)\(mode == .invariant ? " (invariant)" : "") | \(tokens) | \(Self.range(slowest.totalSeconds)) | \(Self.ms(slowest.computeSeconds.median)) | "
                         + "\(reduce) | \(rate) | \(bandwidth) | \(memory) | \(loadAverage.map { String(format: "%.2f", $0) } ?? "–") |")
        }
        return lines.joined(separator: "\n")
    }

    func prefillText(_ first: BenchPhaseResult) -> String {
        var s = "Prefill: \(first.tokensPerForward) tokens in \(first.sequences) sequence\n"
        let rows: [[String]] = ranks.compactMap { r in
            guard let p = r.prefill else { return nil }
            let ratio = p.gemmEfficiency.map { String(format: "%.1f%%", 100 * $0) } ?? "–"
            return ["\(r.rank)", Self.range(p.totalSeconds), Self.ms(p.cpuSeconds.median), Self.ms(p.computeSeconds.median),
                    Self.ms(p.allReduceSeconds.median), Self.ms(p.allReduceWaitSeconds.median), String(format: "%.3f", Double(p.flops) / 1e9),
                    Self.rate(p.flopsPerSecond), p.sgemmFlopsPerSecond.map(Self.rate) ?? "–", ratio]
        }
        s += Format.table(["rank", "forward", "cpu", "compute", "allreduce", "wait", "GFLOP", "GFLOP/s", "sgemm GFLOP/s", "of sgemm"], rows) + "\n"
        if let shape = first.sgemmShape {
            let product = first.sgemmWeightOrder == .inOut ? "x [\(shape[0]), \(shape[2])] · W, W [\(shape[2]), \(shape[1])]"
                : "x [\(shape[0]), \(shape[2])] · Wᵀ, W [\(shape[1]), \(shape[2])]"
            let weight = first.sgemmWeightTile == true
                ? "one tile of the layer's largest hidden-wide weight, dequantized to bf16 as the fp8 route does: the layer holds no bf16 copy"
                : "the layer's largest hidden-wide weight, as the layer keeps it"
            s += "sgemm reference: \(product) (\(weight)), "
            s += "run right after each timed forward on \(first.sgemmKernel ?? "?"); \"of sgemm\" is the median over forwards of the paired ratio\n"
        }
        s += kernelText(first)
        s += stagesText(ranks.compactMap { r in r.prefill.map { (r.rank, $0) } })
        s += reduceText(ranks.compactMap { r in r.prefill.map { (r.rank, $0) } })
        s += flopsText(ranks.compactMap(\.prefill))
        return s
    }

    func decodeText(_ first: BenchPhaseResult) -> String {
        var s = "Decode (\(decodePath?.rawValue ?? "?")): \(first.sequences) sequence\(first.sequences == 1 ? "" : "s") × 1 new token per step, "
        s += "context \(first.contextFirst ?? 0)…\(first.contextLast ?? 0) cached tokens"
        s += first.cacheDType.map { ", held in \($0) (--kv-cache-dtype): \(Format.bytes(first.cacheBytes ?? 0)) per rank" } ?? ""
        s += "\n"
        let rows: [[String]] = ranks.compactMap { r in
            guard let p = r.decode else { return nil }
            let percent = { (e: Double?) in e.map { String(format: "%.1f%%", 100 * $0) } ?? "–" }
            return ["\(r.rank)", Self.range(p.totalSeconds), Self.ms(p.cpuSeconds.median), Self.ms(p.computeSeconds.median),
                    Self.ms(p.allReduceSeconds.median), Self.ms(p.allReduceWaitSeconds.median), Self.mb(p.weightBytesPerToken ?? 0),
                    p.weightBytesPerSecond.map(Self.rate) ?? "–", p.copyBytesPerSecond.map(Self.rate) ?? "–",
                    percent(p.bandwidthEfficiency), percent(p.busyBandwidthEfficiency)]
        }
        s += Format.table(["rank", "step", "cpu", "compute", "allreduce", "wait", "weight MB/token", "weight GB/s", "memcpy GB/s", "of memcpy",
                    "busy, of memcpy"], rows) + "\n"
        s += "memcpy GB/s counts bytes read + written, one copy right after each timed step; a step streams every local weight once; "
        s += "\"busy\" divides by the step less the rank's wait for slower ranks (the target uses the whole step)\n"
        s += kernelText(first)
        s += stagesText(ranks.compactMap { r in r.decode.map { (r.rank, $0) } })
        s += reduceText(ranks.compactMap { r in r.decode.map { (r.rank, $0) } })
        s += flopsText(ranks.compactMap(\.decode))
        return s
    }

    /// Which kernel ran each projection on rank 0 in this phase.
    func kernelText(_ p: BenchPhaseResult) -> String {
        guard let kernels = p.kernels, !kernels.isEmpty else { return "" }
        return "Kernels (rank 0): " + kernels.map { "\($0.projection) \($0.kernel)" }.joined(separator: "; ") + "\n"
    }

    func reduceText(_ results: [(Int, BenchPhaseResult)]) -> String {
        guard tp > 1, let first = results.first?.1 else { return "Allreduce: none (tp=1)\n" }
        var s = "Allreduce of \(Self.mb(first.allReduceBytes)) MB per forward (after its barrier; done by \(first.allReducePath?.rawValue ?? "?")) "
        s += "vs a raw MPI_Allreduce of the same bytes "
        s += "right after each forward, back to back (hot) and after reading 64 MiB (cold); medians in ms and paired ratios:\n"
        for (rank, p) in results {
            guard let raw = p.rawAllReduceSeconds, let cold = p.rawColdAllReduceSeconds else { continue }
            s += String(format: "  rank %d: forward %@, raw hot %@ (%.2f×), raw cold %@ (%.2f×)\n", rank, Self.ms(p.allReduceSeconds.median),
                        Self.ms(raw.median), p.allReduceRatio ?? 0, Self.ms(cold.median), p.allReduceColdRatio ?? 0)
        }
        return s
    }

    func flopsText(_ results: [BenchPhaseResult]) -> String {
        guard let first = results.first else { return "" }
        let equal = results.allSatisfy { $0.flops == $0.planFlops }
        return String(format: "FLOPs per rank: counted %.6f GFLOP (projections %.6f, attention %.6f), plan %.6f GFLOP: %@\n",
                      Double(first.flops) / 1e9, Double(first.projectionFlops) / 1e9, Double(first.attentionFlops) / 1e9, Double(first.planFlops) / 1e9,
                      equal ? "equal on every rank" : "DIFFERENT")
    }

    /// Where each rank's forward goes: the median of each stage, and what no stage covers.
    func stagesText(_ results: [(Int, BenchPhaseResult)]) -> String {
        guard results.contains(where: { $0.1.stages != nil }) else { return "" }
        let stages = ForwardStage.allCases
        let rows: [[String]] = results.map { rank, p in
            let byStage = Dictionary((p.stages ?? []).map { ($0.stage, $0.seconds.median) }, uniquingKeysWith: +)
            let covered = stages.reduce(0) { $0 + (byStage[$1] ?? 0) }
            return ["\(rank)"] + stages.map { Self.ms(byStage[$0] ?? 0) } + [Self.ms(max(0, p.totalSeconds.median - covered))]
        }
        return "Stages (median ms per forward; other = the forward less every timed stage)\n"
            + Format.table(["rank"] + stages.map(\.rawValue) + ["other"], rows) + "\n"
    }
}
