import ExitClass
import MLA
import Measure
import Planner
import TensorCore
import TensorParallel

extension RunReport {
    public func text() -> String {
        var s = "mla-tp: model \(OutsideText.escaped(preset)), layer \(layer), \(layoutName), gate \(gate.rawValue)"
        s += gated ? " (\(activation))" : " (ungated)"
        s += ", \(tokens) tokens in \(sequences) sequence\(sequences == 1 ? "" : "s")"
        if plan.quantization == .fp8 {
            s += ", fp8 weights (e4m3, 128×128 tile scales), bf16 activations, allreduce in \(allReduceDType ?? .bf16)"
        } else if let dtype {
            s += ", \(dtype) weights and activations, allreduce in \(allReduceDType ?? dtype)"
        }
        if mode == .invariant { s += ", invariant mode (fixed-order kernels and reduction trees)" }
        if let hp = plan.paddedHeads {
            s += ", heads padded \(plan.modelHeads ?? 0) → \(hp) with zero heads (--pad-heads: \(Format.bytes(plan.paddingBytes)) of zero weights over the job)"
        }
        if let latent { s += ", latent projections \(latent == .column ? "column-sharded" : "sequence-parallel") (--latent-proj \(latent))" }
        s += "\n\n"
        s += "Per-rank plan\n"
        let hosts = ranks.contains { ($0.node ?? 0) > 0 }
        let extra = (hosts ? ["host (node)"] : []) + (dp != nil ? ["DP group"] : []) + (dcp != nil ? ["DCP index"] : [])
            + (ranks.contains { $0.cachedTokens != nil } ? ["cached tokens"] : [])
        s += Format.table(["rank"] + extra + ["heads", "weight bytes", "read from files", "anonymous memory"], ranks.map { r in
            ["\(r.rank)"] + (hosts ? ["\(r.host ?? "?") (\(r.node ?? 0))"] : [])
                + (dp != nil ? ["\(r.dpGroup ?? 0)"] : []) + (dcp != nil ? ["\(r.dcpIndex ?? 0)"] : [])
                + (ranks.contains { $0.cachedTokens != nil } ? ["\(r.cachedTokens ?? 0)"] : [])
                + [headsCell(r), Format.bytes(r.bytes), Format.bytes(r.bytesReadFromFiles), Format.bytes(r.anonymousMemory)]
        }) + "\n\n"
        if let assignment {
            s += "Sequences per data-parallel group (balanced by tokens; each group serves and caches only its own):\n"
            for (g, seqs) in assignment.enumerated() {
                s += "  group \(g): " + (seqs.isEmpty ? "none (an empty forward: it still enters every collective)" : seqs.map { "#\($0)" }.joined(separator: " ")) + "\n"
            }
            s += "\n"
        }
        if let placement, ranks.contains(where: { ($0.node ?? 0) > 0 }) { s += "Ranks by host: \(placement)\n\n" }
        if dp != nil || dcp != nil || ranks.contains(where: { ($0.node ?? 0) > 0 }) { s += communicatorTable() + "\n" }
        s += plan.weightTable() + "\n\n"
        if tp > 1 && allReduceDType == .bf16 {
            s += "Collective traffic per forward: 1 allreduce (o_proj partial sums) of [\(tokens), \(hidden)] bf16 = "
            s += "\(Format.bytes(allReduceBytes)), reduced in bf16, each element summed in rank order (docs/precision.md): "
            s += allReducePath == .sharedMemory
                ? "every rank's rounded partial read through a shared-memory window and summed by every rank (each rank writes n and reads (p−1)·n)\n"
                : "a reduce-scatter of bf16 chunks, each summed by its owner, then an all-gather (2(p−1)/p·n = \(Format.bytes(ringBytesPerRank)) sent per rank)\n"
            s += "  done by \(allReducePath?.rawValue ?? "?")\n"
        } else if tp > 1 {
            s += "Collective traffic per forward: 1 allreduce (o_proj partial sums) of [\(tokens), \(hidden)] f32 = "
            s += "\(Format.bytes(allReduceBytes)); a ring sends 2(p−1)/p·n = \(Format.bytes(ringBytesPerRank)) per rank\n"
            if allReducePath == .sharedMemory {
                s += "  done through a shared-memory window (one host, payload ≤ 1 MiB): each rank writes n and reads (p−1)·n; --allreduce mpi for MPI_Allreduce\n"
            } else if let path = allReducePath {
                s += "  done by \(path.rawValue)\n"
            }
        } else {
            s += "Collective traffic per forward: none (tp=1)\n"
        }
        if let latent, tp > 1 {
            let what = latent == .column ? "each rank's 1/tp of q_a_proj's and kv_a_proj_with_mqa's outputs for every token"
                                         : "each rank's run of the tokens through q_a_proj and kv_a_proj_with_mqa"
            s += latentGather.map { "Latent all-gather (\(what)), before the RMSNorms: \($0.calls) call\($0.calls == 1 ? "" : "s"), \(Format.bytes($0.bytes)) from rank 0\n" }
                ?? "Latent all-gather: none in this run (\(latent == .sequence ? "every step had fewer tokens than ranks or was decode only, so the latent was computed replicated" : "no step"))\n"
        }
        s += "Forward on rank 0: \(ms(forwardSeconds)) ms (allreduce \(ms(allReduceSeconds)) ms), \(Format.gflop(flops)) GFLOP\n"
        if let v = serving {
            s += "Served through the latent KV cache: \(v.steps) steps: \(v.prefillTokens) tokens prefilled"
            s += v.prefillChunk.map { " in chunks of \($0)" } ?? ""
            s += ", then \(v.decodeTokens) decoded one at a time (the last \(v.decodeSteps) of each sequence"
            if !v.shorterThanDecodeSteps.isEmpty {
                let lengths = v.shorterThanDecodeSteps.map(String.init).joined(separator: ", ")
                s += "; \(v.shorterThanDecodeSteps.count == 1 ? "a sequence" : "sequences") of \(lengths) tokens, shorter than "
                s += "--decode-steps \(v.decodeSteps), decode\(v.shorterThanDecodeSteps.count == 1 ? "s" : "") all \(v.shorterThanDecodeSteps.count == 1 ? "its" : "their") tokens"
            }
            s += "), \(v.decode.rawValue); cache in \(v.cacheDType) (--kv-cache-dtype), \(Format.bytes(v.cacheBytesPerToken)) per token, "
            s += dp == nil && dcp == nil ? "\(Format.bytes(v.cacheBytesPerRank)) on every rank (replicated)\n"
                : "at most \(Format.bytes(v.cacheBytesPerRank)) on a rank (each holds its group's sequences\(dcp != nil ? ", and of those only its DCP share of the tokens" : ""))\n"
            if let c = v.againstPlainForward {
                s += "The \(v.cacheDType) cache's rounding moves the output from the plain unsharded forward by max |Δ| = \(sci(c.maxAbsDiff)), "
                s += "relative \(sci(c.relative)) (a measurement; the check below compares like with like)\n"
            }
        }
        s += kernelText()
        let forward = serving.flatMap { $0.checkedAgainstServed ? "the unsharded forward served through the same \($0.cacheDType) cache" : nil }
            ?? "the unsharded forward"
        if mode == .invariant, let c = check, let p = precisionCheck {
            s += "Check against \(forward) in the invariant mode (tp = 1, \(dtype ?? .f32)): bit-identical: "
                + (p.bitIdentical ? "yes" : "no (\(p.differingElements) of \(p.elements) elements differ; max |Δ| = \(sci(c.maxAbsDiff)))")
                + (p.bitIdentical ? "  PASS" : "  FAIL") + "\n"
        } else if let c = check, let p = precisionCheck, let dtype {
            s += "Check against \(forward) in \(dtype) (tp = 1 in \(dtype)): " + checkLine(c)
            s += "; bit-identical to it: " + (p.bitIdentical ? "yes" : "no (\(p.differingElements) of \(p.elements) elements differ)") + "\n"
            s += "Check against \(forward) in f32: " + checkLine(p.f32) + "\n"
        } else if let c = check {
            s += "Check against \(forward): " + checkLine(c) + "\n"
        } else {
            s += "Check against the unsharded forward: skipped\n"
        }
        if let output { s += "Output: attn_output [\(tokens), \(hidden)] f32 written to \(OutsideText.escaped(output))\n" }
        return s
    }

    func ms(_ s: Double) -> String { String(format: "%.3f", s * 1e3) }

    /// A rank's real heads, and its zero heads when the heads are padded (`6..<8 + 1 zero`).
    func headsCell(_ r: RankRow) -> String {
        let real = r.heads[1] - r.heads[0], local = (plan.paddedHeads ?? 0) / max(tp, 1)
        let zero = plan.paddedHeads == nil ? 0 : local - real
        return (real > 0 ? "\(r.heads[0])..<\(r.heads[1])" : "none") + (zero > 0 ? " + \(zero) zero" : "")
    }

    func checkLine(_ c: CheckResult) -> String {
        "max |Δ| = \(sci(c.maxAbsDiff)), relative \(sci(c.relative)) (tolerance \(String(format: "%.0e", c.tolerance)))  \(c.pass ? "PASS" : "FAIL")"
    }

    /// Which kernel ran each projection on rank 0 (a projection twice when prefill and decode differ).
    func kernelText() -> String {
        guard let kernels, !kernels.isEmpty else { return "" }
        var s = "Kernels on rank 0 (oneDNN's bf16 on this CPU: \(oneDNNBF16 ?? "?")):\n"
        let width = kernels.map(\.projection.count).max() ?? 0
        for k in kernels { s += "  " + k.projection.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + k.kernel + "\n" }
        return s
    }

    /// `tp4`, `dp2xtp2`, `tp4-dcp2` (as `ParallelLayout` names them), or `tp=K` for plain TP.
    var layoutName: String {
        guard dp != nil || dcp != nil else { return "tp=\(tp)" }
        return ParallelLayout(dp: dp ?? 1, tp: tp, dcp: dcp ?? 1).description
    }

    /// Every communicator once (from the first rank that reports it): the collectives it carried.
    func communicatorTable() -> String {
        var seen = Set<String>(), rows: [[String]] = []
        for r in ranks {
            for c in r.communicators ?? [] where !seen.contains(c.name) {
                seen.insert(c.name)
                let kinds = c.kinds.filter { $0.kind != .wait }
                rows.append([c.name, kinds.isEmpty ? "none" : kinds.map { "\($0.calls) \($0.kind.label)" }.joined(separator: ", "),
                             Format.bytes(kinds.reduce(0) { $0 + $1.bytes }), c.allReducePath?.rawValue ?? "—"])
            }
        }
        return "Collectives by communicator (calls, and bytes each rank contributed)\n"
            + Format.table(["communicator", "collectives", "bytes/rank", "allreduce done by"], rows)
    }
    func sci(_ x: Float) -> String { String(format: "%.3e", x) }
}

extension ShardingPlan {
    /// The weights table `run` and `plan` print, and the per-rank total under it.
    public func weightTable() -> String {
        Format.table(["weight", "layout", "global", "local (each rank)", "bytes/rank"], weights.map {
            [$0.name, $0.layout.rawValue, Shape($0.globalShape).description, Shape($0.localShape).description, Format.bytes($0.bytesPerRank)]
        }) + "\nper rank: \(Format.bytes(bytesPerRank)) = replicated \(Format.bytes(replicatedBytes)) + shard \(Format.bytes(shardedBytes))"
    }
}

extension Collectives.SegmentKind {
    /// How the run report names a collective.
    var label: String {
        switch self {
        case .wait: return "barrier"
        case .reduce: return "allreduce"
        case .gather: return "all-gather"
        case .scatter: return "reduce-scatter"
        }
    }
}
