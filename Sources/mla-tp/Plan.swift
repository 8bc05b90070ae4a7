import ArgumentParser
import Foundation
import MLA
import TensorCore
import TensorParallel


/// `mla-tp plan`: what each rank holds, computes and moves at a given tp, from the config alone
/// (a plain process: no mpirun, no MPI, no weights), and optionally a time projection.
struct Plan: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Per-rank weights, FLOPs, KV cache and collective bytes at a given tp, and a time projection (no mpirun needed).",
        discussion: """
            mla-tp plan --preset deepseek-v3 --tp 8
            mla-tp plan --model DIR --tp 4 --gate replicated-sliced --tokens 512 --json
            mla-tp plan --preset deepseek-v3 --tp 8 --hardware h100
            mla-tp plan --preset deepseek-v2-lite --tp 2 --hardware cpu-measured [--rates FILE]
            --hardware takes h100, h200, cpu-measured or custom:TFLOPS,HBM_GBps,LINK_GBps,LINK_LATENCY_us.
            cpu-measured measures this machine's sgemm (at the prefill's [T, hidden] shape), copy and MPI \
            allreduce rates with a short `mpirun -n min(tp, cores) mla-tp sweep-step --probe` (or reads them \
            from --rates, or from a bench report with --bench-json).
            """)

    @OptionGroup var model: ModelOptions

    @Option(help: "Tensor-parallel size to plan for.")
    var tp: Int

    @Option(help: "Tokens: prefill of one sequence of T tokens, and decode of one token after T cached ones.")
    var tokens: Int = 128

    @Option(help: "Comma-separated sequence lengths of the prefill batch (overrides --tokens); decode uses the same contexts.")
    var seqs: String?

    @Option(help: "Project time on h100, h200, cpu-measured, or custom:TFLOPS,HBM_GBps,LINK_GBps,LINK_LATENCY_us.")
    var hardware: String?

    @Option(help: "Measured rates for cpu-measured (JSON written by `mla-tp sweep-step --probe --out FILE`).")
    var rates: String?

    @Option(help: "Take the cpu-measured rates from a `mla-tp bench --phase both --json` report instead (sgemm, memcpy, raw allreduce).")
    var benchJson: String?

    @Flag(help: "Print the plan as one JSON document.")
    var json = false

    func validate() throws {
        guard tp >= 1 else { throw ValidationError("--tp \(tp) must be at least 1") }
        guard tokens >= 0 else { throw ValidationError("--tokens \(tokens) must be ≥ 0") }
    }

    func run() throws {
        let (config, name) = try model.loadConfig()
        try config.validate(tp: tp)
        let lengths = try InputOptions.parse(seqs.map { ["--seqs", $0] } ?? ["--tokens", "\(tokens)"])
            .batch().cuSeqlens.adjacentPairs().map { $1 - $0 }
        let probeShape = MeasuredRates.probeShape(tokens: lengths.reduce(0, +), config: config)
        let payload = ShardingPlan.allReduceBytes(tokens: max(lengths.reduce(0, +), 1), config: config)
        let hw: Hardware?
        if let benchJson {
            guard hardware == nil || hardware == "cpu-measured" else {
                throw CLIError.usage("--bench-json gives cpu-measured rates; drop --hardware \(hardware!) or use --hardware cpu-measured")
            }
            hw = try MeasuredRates.fromBench(benchJson, needLink: tp > 1).hardware
        } else {
            let probeRanks = min(tp, ProcessInfo.processInfo.activeProcessorCount)
            hw = try hardware.map { try Plan.hardware($0, ratesFile: rates, probeRanks: probeRanks, probeShape: probeShape, allReduceBytes: payload) }
        }
        let report = PlanReport(config: config, model: name, tp: tp, gate: model.gate, sequenceLengths: lengths, hardware: hw)
        RankOutputShim.out(json ? try report.json() : report.text())
    }

    /// The hardware named by `--hardware`.
    static func hardware(_ spec: String, ratesFile: String?, probeRanks: Int = 2, probeShape: String = "1024,1024,1024",
                         allReduceBytes: Int = 4 << 20) throws -> Hardware {
        switch spec {
        case "h100": return .h100
        case "h200": return .h200
        case "cpu-measured":
            let measured = try ratesFile.map { try MeasuredRates.load($0) } ?? MeasuredRates.probe(ranks: probeRanks, shape: probeShape, allReduceBytes: allReduceBytes)
            return measured.hardware
        default:
            if spec.hasPrefix("custom:") {
                do { return try Hardware.custom(String(spec.dropFirst("custom:".count))) } catch let e as ProjectionError {
                    throw CLIError.usage(e.description)
                }
            }
            throw CLIError.usage("--hardware \(spec) is not one of h100, h200, cpu-measured, custom:TFLOPS,HBM_GBps,LINK_GBps,LINK_LATENCY_us")
        }
    }
}

extension Array {
    /// (a0, a1), (a1, a2), …
    func adjacentPairs() -> [(Element, Element)] { count < 2 ? [] : (1..<count).map { (self[$0 - 1], self[$0]) } }
}

/// Everything `plan` prints, as one Codable document.
struct PlanReport: Codable {
    struct StageRow: Codable {
        var name: String
        var kind: String
        var flops: Int
        var flopsPerToken: Double
        /// Bytes read and written (f32).
        var bytes: Int
    }
    struct CostReport: Codable {
        var tokens: Int
        var stages: [StageRow]
        var projectionFlops: Int
        var attentionFlops: Int
        var totalFlops: Int
        var bytes: Int
        init(_ cost: FlopModel.Cost, tokens: Int) {
            self.tokens = tokens
            stages = cost.stages.map {
                StageRow(name: $0.name, kind: $0.kind.rawValue, flops: $0.flops,
                         flopsPerToken: tokens > 0 ? Double($0.flops) / Double(tokens) : 0, bytes: 4 * $0.elements)
            }
            projectionFlops = cost.projectionFlops
            attentionFlops = cost.attentionFlops
            totalFlops = cost.totalFlops
            bytes = 4 * cost.elements
        }
    }
    struct Decode: Codable {
        var path: DecodePath
        /// Cached tokens each sequence attends to (plus the new one).
        var contexts: [Int]
        var cost: CostReport
        /// Bytes read and written per decoded token (f32).
        var bytesPerToken: Int
    }
    struct KVCacheRow: Codable {
        /// `(kv_lora + rope) · 4`, replicated on every rank.
        var bytesPerToken: Int
        /// After the prefill's tokens, on each rank.
        var bytesAfterPrefill: Int
    }
    struct Collective: Codable {
        var allReduceCalls: Int
        /// `[T, hidden]` f32.
        var prefillBytes: Int
        var prefillRingBytesPerRank: Int
        /// `[B, hidden]` f32 for a decode step of B sequences.
        var decodeBytes: Int
        var decodeRingBytesPerRank: Int
    }
    struct GateRow: Codable {
        var layout: GateLayout
        var gateBytesPerRank: Int
        var bytesPerRank: Int
        var gateFlops: Int
        var prefillFlops: Int
        var runs: Bool
    }
    struct ProjectionReport: Codable {
        var hardware: Hardware
        var prefill: Projection
        /// By decode path ("naive", "absorbed").
        var decode: [String: Projection]
    }

    var model: String
    var tp: Int
    var gate: GateLayout
    var gated: Bool
    var sequenceLengths: [Int]
    var plan: ShardingPlan
    var bytesPerRank: Int
    var replicatedBytes: Int
    var shardedBytes: Int
    var prefill: CostReport
    var decode: [Decode]
    var kvCache: KVCacheRow
    var collective: Collective
    var gates: [GateRow]
    var projection: ProjectionReport?

    init(config c: MLAConfig, model: String, tp: Int, gate: GateLayout, sequenceLengths lengths: [Int], hardware: Hardware?) {
        self.model = model
        self.tp = tp
        self.gate = gate
        gated = c.useGatedAttn
        sequenceLengths = lengths
        let T = lengths.reduce(0, +), B = lengths.count
        plan = ShardingPlan(config: c, tp: tp, gate: gate)
        bytesPerRank = plan.bytesPerRank
        replicatedBytes = plan.replicatedBytes
        shardedBytes = plan.shardedBytes
        let prefillCost = FlopModel.prefill(config: c, tp: tp, gate: gate, sequenceLengths: lengths)
        prefill = CostReport(prefillCost, tokens: T)
        let decodeCosts = DecodePath.allCases.map { ($0, FlopModel.decode(config: c, tp: tp, gate: gate, contexts: lengths, path: $0)) }
        decode = decodeCosts.map { path, cost in
            Decode(path: path, contexts: lengths, cost: CostReport(cost, tokens: B), bytesPerToken: B > 0 ? 4 * cost.elements / B : 0)
        }
        let kv = FlopModel.kvCacheBytesPerToken(config: c)
        kvCache = KVCacheRow(bytesPerToken: kv, bytesAfterPrefill: kv * T)
        let pb = ShardingPlan.allReduceBytes(tokens: T, config: c), db = ShardingPlan.allReduceBytes(tokens: B, config: c)
        collective = Collective(allReduceCalls: tp > 1 ? 1 : 0, prefillBytes: pb, prefillRingBytesPerRank: ShardingPlan.ringBytesPerRank(pb, tp: tp),
                                decodeBytes: db, decodeRingBytesPerRank: ShardingPlan.ringBytesPerRank(db, tp: tp))
        gates = GateLayout.allCases.map { layout in
            let p = ShardingPlan(config: c, tp: tp, gate: layout)
            let cost = FlopModel.prefill(config: c, tp: tp, gate: layout, sequenceLengths: lengths)
            return GateRow(layout: layout, gateBytesPerRank: p.weights.filter { $0.name.contains(".gate.") }.reduce(0) { $0 + $1.bytesPerRank },
                           bytesPerRank: p.bytesPerRank, gateFlops: cost.stage("gate")?.flops ?? 0, prefillFlops: cost.totalFlops, runs: p.runs)
        }
        if let hardware {
            var byPath: [String: Projection] = [:]
            for (path, cost) in decodeCosts { byPath[path.rawValue] = Projection(cost: cost, tokens: B, config: c, tp: tp, hardware: hardware) }
            projection = ProjectionReport(hardware: hardware,
                                          prefill: Projection(cost: prefillCost, tokens: T, config: c, tp: tp, hardware: hardware),
                                          decode: byPath)
        }
    }

    func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }

    func text() -> String {
        let T = prefill.tokens, B = sequenceLengths.count
        let batch = B == 1 ? "\(T) tokens" : "\(T) tokens in \(B) sequences \(sequenceLengths)"
        var s = "mla-tp plan: model \(model), tp=\(tp), gate \(gate.rawValue)\(gated ? "" : " (ungated)"), prefill \(batch); "
        s += "decode: one new token after \(B == 1 ? "\(T)" : "\(sequenceLengths)") cached\n"
        if !plan.runs {
            s += "NOTE: the replicated gate does not run at tp=\(tp) (its [T, H·v] output cannot multiply a rank's [T, H/tp·v] heads) — "
            s += "use --gate column\n"
        }
        s += "\nWeights (f32, per rank)\n"
        s += table(["weight", "layout", "global", "local (each rank)", "bytes/rank"], plan.weights.map {
            [$0.name, $0.layout.rawValue, Shape($0.globalShape).description, Shape($0.localShape).description, formatBytes($0.bytesPerRank)]
        }) + "\n"
        s += "per rank: \(formatBytes(bytesPerRank)) = replicated \(formatBytes(replicatedBytes)) + shard \(formatBytes(shardedBytes))\n"

        s += "\nGate layouts at tp=\(tp) (prefill of \(T) tokens)\n"
        let maxGate = gates.map(\.gateBytesPerRank).max() ?? 1
        s += table(["layout", "gate bytes/rank", "", "all weights/rank", "gate GFLOP", "forward GFLOP", "runs at tp=\(tp)"], gates.map {
            [$0.layout.rawValue, formatBytes($0.gateBytesPerRank), bar(Double($0.gateBytesPerRank), of: Double(maxGate), width: 24),
             formatBytes($0.bytesPerRank), gflop($0.gateFlops), gflop($0.prefillFlops), $0.runs ? "yes" : "NO (shape mismatch)"]
        }) + "\n"

        s += "\nFLOPs per rank (exactly what the forward counts; bytes = f32 operands read + results written)\n"
        let naive = decode.first { $0.path == .naive }!, absorbed = decode.first { $0.path == .absorbed }!
        var names: [String] = []
        for st in prefill.stages + naive.cost.stages + absorbed.cost.stages where !names.contains(st.name) { names.append(st.name) }
        func cell(_ cost: CostReport, _ n: String, perToken: Bool) -> String {
            guard let st = cost.stages.first(where: { $0.name == n }) else { return "—" }
            return perToken ? mflop(st.flopsPerToken) : gflop(st.flops)
        }
        s += table(["stage", "prefill GFLOP (\(T) tok)", "MFLOP/token", "decode naive MFLOP/token", "decode absorbed MFLOP/token"],
                   names.map { [$0, cell(prefill, $0, perToken: false), cell(prefill, $0, perToken: true),
                                cell(naive.cost, $0, perToken: true), cell(absorbed.cost, $0, perToken: true)] }
                   + [["total", gflop(prefill.totalFlops), mflop(Double(prefill.totalFlops) / Double(max(T, 1))),
                       mflop(Double(naive.cost.totalFlops) / Double(max(B, 1))), mflop(Double(absorbed.cost.totalFlops) / Double(max(B, 1)))],
                      ["bytes", formatBytes(prefill.bytes), formatBytes(T > 0 ? prefill.bytes / T : 0),
                       formatBytes(naive.bytesPerToken), formatBytes(absorbed.bytesPerToken)]]) + "\n"
        s += "(projections \(gflop(prefill.projectionFlops)) + attention \(gflop(prefill.attentionFlops)) GFLOP in the prefill; "
        s += "attention runs queries in blocks of \(FlopModel.queryBlockRows) rows)\n"

        s += "\nKV cache (MLA latent: (kv_lora_rank + qk_rope_head_dim) × 4 B, replicated on every rank): "
        s += "\(formatBytes(kvCache.bytesPerToken)) per token, \(formatBytes(kvCache.bytesAfterPrefill)) after the prefill's \(T) tokens\n"
        if tp > 1 {
            s += "Collective per forward: 1 allreduce of [\(T), hidden] f32 = \(formatBytes(collective.prefillBytes)) "
            s += "(ring: 2(p−1)/p·n = \(formatBytes(collective.prefillRingBytesPerRank)) sent per rank); "
            s += "decode step: \(formatBytes(collective.decodeBytes)) (\(formatBytes(collective.decodeRingBytesPerRank)) per rank)\n"
        } else {
            s += "Collective per forward: none (tp=1)\n"
        }

        if let p = projection {
            s += "\nProjection on \(p.hardware.name) (\(p.hardware.source))\n"
            s += "roofline per stage: max(FLOPs / \(formatRate(p.hardware.flopsPerSecond, "FLOP/s")), bytes / \(formatRate(p.hardware.memoryBytesPerSecond, "B/s"))) "
            s += "at \(p.hardware.bytesPerElement) B/element"
            if p.hardware.share(tp: tp) < 1 { s += String(format: ", each rank gets %.2f of a core (%d ranks on %d cores)", p.hardware.share(tp: tp), tp, p.hardware.cores ?? 0) }
            s += "; ring allreduce 2(p−1)/p·n / \(formatRate(p.hardware.linkBytesPerSecond, "B/s")) + 2(p−1) × \(String(format: "%.2f µs", p.hardware.linkLatencySeconds * 1e6))\n"
            let runs: [(String, Projection)] = [("prefill \(T) tok", p.prefill)]
                + DecodePath.allCases.compactMap { path in p.decode[path.rawValue].map { ("decode \(path.rawValue)", $0) } }
            var stageNames: [String] = []
            for (_, pr) in runs { for st in pr.stages where !stageNames.contains(st.name) { stageNames.append(st.name) } }
            s += table(["stage"] + runs.map(\.0), stageNames.map { n in
                [n] + runs.map { _, pr in pr.stages.first { $0.name == n }.map { "\(formatSeconds($0.seconds)) \($0.bound == "compute" ? "C" : "M")" } ?? "—" }
            } + [["allreduce"] + runs.map { formatSeconds($0.1.allReduceSeconds) },
                 ["compute"] + runs.map { formatSeconds($0.1.computeSeconds) },
                 ["total"] + runs.map { formatSeconds($0.1.totalSeconds) }]) + "\n"
            s += "(C: compute-bound, M: memory-bound)\n"
        }
        return s
    }
}

func gflop(_ f: Int) -> String { String(format: "%.3f", Double(f) / 1e9) }
func mflop(_ f: Double) -> String { String(format: "%.2f", f / 1e6) }
func formatSeconds(_ s: Double) -> String {
    if s >= 1 { return String(format: "%.3f s", s) }
    if s >= 1e-3 { return String(format: "%.3f ms", s * 1e3) }
    return String(format: "%.2f µs", s * 1e6)
}
func formatRate(_ r: Double, _ unit: String) -> String {
    if r >= 1e12 { return String(format: "%.3g T%@", r / 1e12, unit) }
    if r >= 1e9 { return String(format: "%.3g G%@", r / 1e9, unit) }
    return String(format: "%.3g M%@", r / 1e6, unit)
}
/// A text bar of `width` cells for value / max.
func bar(_ value: Double, of max: Double, width: Int) -> String {
    let n = max > 0 ? Int((value / max * Double(width)).rounded()) : 0
    return String(repeating: "█", count: n) + String(repeating: "·", count: width - n)
}
