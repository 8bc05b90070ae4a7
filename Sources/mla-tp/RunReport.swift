import Foundation
import MLA
import TensorCore
import TensorParallel

/// What `run` prints on rank 0: the per-rank plan, the collective traffic, the timing and the check.
struct RunReport: Codable {
    struct RankRow: Codable {
        var rank: Int
        var heads: [Int]
        var bytes: Int
        var bytesReadFromFiles: Int = 0
        var anonymousMemory: Int = 0
    }
    struct Check: Codable { var maxAbsDiff: Float; var relative: Float; var tolerance: Float; var pass: Bool }

    var preset: String
    var layer: Int
    var tp: Int
    var gate: GateLayout
    var gated: Bool
    var activation: String
    var tokens: Int
    var hidden: Int
    var sequences: Int
    var plan: ShardingPlan
    var ranks: [RankRow]
    var output: String?
    var serving: Serving?

    struct Serving: Codable {
        var decodeSteps: Int
        var prefillChunk: Int?
        var decode: DecodePath
        var steps: Int
        var cacheBytesPerToken: Int
        var cacheBytesPerRank: Int
    }
    var allReduceCalls: Int
    var allReduceBytes: Int
    var ringBytesPerRank: Int
    var forwardSeconds: Double
    var allReduceSeconds: Double
    /// How the last forward's allreduce was done (`Collectives.AllReducePath`).
    var allReducePath: String?
    var flops: Int
    var check: Check?

    init(config: MLAConfig, preset: String, layer: Int, tp: Int, gate: GateLayout, batch: Batch,
         counters: ForwardCounters, allReduceSeconds: Double, comparison: Comparison?, tolerance: Float) {
        self.preset = preset
        self.layer = layer
        self.tp = tp
        self.gate = gate
        gated = config.useGatedAttn
        activation = config.gatedAttnAct
        tokens = batch.tokenCount
        hidden = config.hiddenSize
        sequences = batch.sequenceCount
        let plan = ShardingPlan(config: config, tp: tp, gate: gate, layer: layer)
        self.plan = plan
        ranks = (0..<tp).map { r in
            let h = ShardingPlan.heads(rank: r, tp: tp, config: config)
            return RankRow(rank: r, heads: [h.lowerBound, h.upperBound], bytes: plan.bytesPerRank)
        }
        allReduceCalls = tp > 1 ? 1 : 0
        allReduceBytes = ShardingPlan.allReduceBytes(tokens: batch.tokenCount, config: config)
        ringBytesPerRank = ShardingPlan.ringBytesPerRank(allReduceBytes, tp: tp)
        forwardSeconds = counters.seconds
        self.allReduceSeconds = allReduceSeconds
        flops = counters.totalFlops
        check = comparison.map {
            Check(maxAbsDiff: $0.maxAbsDiff, relative: $0.relative, tolerance: tolerance, pass: $0.passes(relativeTolerance: tolerance))
        }
    }

    func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }

    func text() -> String {
        var s = "mla-tp: model \(preset), layer \(layer), tp=\(tp), gate \(gate.rawValue)"
        s += gated ? " (\(activation))" : " (ungated)"
        s += ", \(tokens) tokens in \(sequences) sequence\(sequences == 1 ? "" : "s")\n\n"
        s += "Per-rank plan\n"
        s += table(["rank", "heads", "weight bytes", "read from files", "anonymous memory"], ranks.map {
            ["\($0.rank)", "\($0.heads[0])..<\($0.heads[1])", formatBytes($0.bytes), formatBytes($0.bytesReadFromFiles),
             formatBytes($0.anonymousMemory)]
        }) + "\n\n"
        s += table(["weight", "layout", "global", "local (each rank)", "bytes/rank"], plan.weights.map {
            [$0.name, $0.layout.rawValue, Shape($0.globalShape).description, Shape($0.localShape).description, formatBytes($0.bytesPerRank)]
        }) + "\n"
        s += "per rank: \(formatBytes(plan.bytesPerRank)) = replicated \(formatBytes(plan.replicatedBytes)) + shard \(formatBytes(plan.shardedBytes))\n\n"
        if tp > 1 {
            s += "Collective traffic per forward: 1 allreduce (o_proj partial sums) of [\(tokens), \(hidden)] f32 = "
            s += "\(formatBytes(allReduceBytes)); a ring sends 2(p−1)/p·n = \(formatBytes(ringBytesPerRank)) per rank\n"
            if allReducePath == Collectives.AllReducePath.sharedMemory.rawValue {
                s += "  done through a shared-memory window (one host, payload ≤ 1 MiB): each rank writes n and reads (p−1)·n; --allreduce mpi for MPI_Allreduce\n"
            } else if let path = allReducePath {
                s += "  done by \(path)\n"
            }
        } else {
            s += "Collective traffic per forward: none (tp=1)\n"
        }
        s += String(format: "Forward on rank 0: %.3f ms (allreduce %.3f ms), %.3f GFLOP\n",
                    forwardSeconds * 1e3, allReduceSeconds * 1e3, Double(flops) / 1e9)
        if let v = serving {
            s += "Served through the latent KV cache: \(v.steps) steps (prefill first len−\(v.decodeSteps) tokens"
            s += v.prefillChunk.map { " in chunks of \($0)" } ?? ""
            s += ", then \(v.decodeSteps) decode steps, \(v.decode.rawValue)); cache \(formatBytes(v.cacheBytesPerToken)) per token, "
            s += "\(formatBytes(v.cacheBytesPerRank)) on every rank (replicated)\n"
        }
        if let c = check {
            s += String(format: "Check against the unsharded forward: max |Δ| = %.3e, relative %.3e (tolerance %.0e)  %@\n",
                        c.maxAbsDiff, c.relative, c.tolerance, c.pass ? "PASS" : "FAIL")
        } else {
            s += "Check against the unsharded forward: skipped\n"
        }
        if let output { s += "Output: attn_output [\(tokens), \(hidden)] f32 written to \(output)\n" }
        return s
    }
}
