import MLA
import TensorCore
import TensorParallel

extension RunReport {
    public func text() -> String {
        var s = "mla-tp: model \(preset), layer \(layer), tp=\(tp), gate \(gate.rawValue)"
        s += gated ? " (\(activation))" : " (ungated)"
        s += ", \(tokens) tokens in \(sequences) sequence\(sequences == 1 ? "" : "s")\n\n"
        s += "Per-rank plan\n"
        s += Format.table(["rank", "heads", "weight bytes", "read from files", "anonymous memory"], ranks.map {
            ["\($0.rank)", "\($0.heads[0])..<\($0.heads[1])", Format.bytes($0.bytes), Format.bytes($0.bytesReadFromFiles),
             Format.bytes($0.anonymousMemory)]
        }) + "\n\n"
        s += plan.weightTable() + "\n\n"
        if tp > 1 {
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
            s += "), \(v.decode.rawValue); cache \(Format.bytes(v.cacheBytesPerToken)) per token, "
            s += "\(Format.bytes(v.cacheBytesPerRank)) on every rank (replicated)\n"
        }
        if let c = check {
            s += "Check against the unsharded forward: max |Δ| = \(sci(c.maxAbsDiff)), relative \(sci(c.relative)) "
            s += "(tolerance \(String(format: "%.0e", c.tolerance)))  \(c.pass ? "PASS" : "FAIL")\n"
        } else {
            s += "Check against the unsharded forward: skipped\n"
        }
        if let output { s += "Output: attn_output [\(tokens), \(hidden)] f32 written to \(output)\n" }
        return s
    }

    func ms(_ s: Double) -> String { String(format: "%.3f", s * 1e3) }
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
