import ExitClass
import Foundation
import MLA
import Planner
import Plot
import TensorCore
import TensorParallel

/// `plan --layouts`: TP, data-parallel attention and decode context parallelism side by side,
/// per rank, for one batch (the busiest rank of each layout), optionally for every layer and
/// projected on a hardware model.
public struct LayoutPlanReport: Codable, Sendable {
    public var model: String
    public var ranks: Int
    public var context: Int
    public var batch: Int
    public var layers: Int
    public var dtype: String
    /// What the cache holds its tokens in (the plans' `kvBytes…` and `maxContextTimesBatch`).
    public var cacheDType: KVCacheDType
    public var memoryPerRank: Int?
    public var hardware: Hardware?
    public var layouts: [Row]
    /// For each `-latcol` layout, with a hardware model: where it stops winning a decode step
    /// against its replicated twin (nil without either).
    public var latentCrossovers: [LatentCrossover]?

    public struct Row: Codable, Sendable {
        public var plan: LayoutPlan
        /// Projected seconds per layer (compute, communication), when a hardware model is given.
        public var decodeSeconds: [Double]?
        public var prefillSeconds: [Double]?
    }

    public init(config: MLAConfig, model: String, ranks: Int, layouts: [ParallelLayout], context: Int, batch: Int, layers: Int,
                dtype: String, bytesPerElement: Int, cacheDType: KVCacheDType = .f32, memoryPerRank: Int?,
                hardware: Hardware?, quantization: WeightQuantization? = nil) throws(CountOverflow) {
        self.model = model
        self.ranks = ranks
        self.context = context
        self.batch = batch
        self.layers = layers
        self.dtype = dtype
        self.cacheDType = cacheDType
        self.memoryPerRank = memoryPerRank
        self.hardware = hardware
        var rows: [Row] = []
        for l in layouts {
            let p = try LayoutPlan(config: config, layout: l, context: context, batch: batch, bytesPerElement: bytesPerElement,
                                   cacheDType: cacheDType, memoryPerRank: memoryPerRank.map { $0 / max(layers, 1) }, quantization: quantization)
            let d = hardware.map { p.seconds(p.decode, p.decodeCollectives, config: config, hardware: $0) }
            let f = hardware.map { p.seconds(p.prefill, p.prefillCollectives, config: config, hardware: $0) }
            rows.append(Row(plan: p, decodeSeconds: d.map { [$0.compute, $0.communication] }, prefillSeconds: f.map { [$0.compute, $0.communication] }))
        }
        self.layouts = rows
        if let hardware {
            let sharded = layouts.filter { $0.latent == .column }
            latentCrossovers = sharded.isEmpty ? nil : try sharded.map { l throws(CountOverflow) in
                try LatentCrossover(config: config, layout: l, context: context, batch: batch, bytesPerElement: bytesPerElement,
                                    cacheDType: cacheDType, quantization: quantization, hardware: hardware)
            }
        }
    }

    public func json() throws -> String { try Format.json(self) }

    public func text() -> String {
        let L = layers, perLayer = L == 1 ? "one layer" : "\(L) layers"
        var s = "mla-tp plan: model \(OutsideText.escaped(model)), \(ranks) ranks, batch \(batch) × context \(context), \(perLayer), \(dtype), KV cache in \(cacheDType); "
        s += "each figure is the busiest rank's (DP group 0, DCP index 0)\n\n"
        let gb = { (b: Double) in Format.bytes(Int(b)) }
        // Bytes a rank contributes over the layers, and its collective calls (each kind once per layer).
        let sent = { (list: [LayoutPlan.CollectiveBytes]) in "\(gb(Double(list.reduce(0) { $0 + $1.bytes } * L))) (\(list.count * L))" }
        s += Format.table(["layout", "seqs/group", "weights/rank", "KV/token/rank", "KV/rank (batch)", "max context×batch",
                           "decode GFLOP", "decode sent (calls)", "prefill GFLOP", "prefill sent (calls)"], layouts.map { r in
            let p = r.plan
            return [p.layout, "\(p.sequencesPerGroup)", gb(Double(p.weightBytesPerRank * L)), gb(p.kvBytesPerToken * Double(L)),
                    gb(Double(p.kvBytesPerRank * L)), p.maxContextTimesBatch.map { "\($0)" } ?? "—",
                    Format.gflop(p.decode.totalFlops * L), sent(p.decodeCollectives),
                    Format.gflop(p.prefill.totalFlops * L), sent(p.prefillCollectives)]
        }) + "\n"
        if let base = layouts.first?.plan.kvBytesPerRank, base > 0 {
            s += "KV cache per rank against \(layouts[0].plan.layout): "
            s += layouts.dropFirst().map { "\($0.plan.layout) \(String(format: "%.3g", Double($0.plan.kvBytesPerRank) / Double(base)))×" }.joined(separator: ", ") + "\n"
        }
        s += "sent = bytes each rank contributes to its collectives: o_proj's allreduce over the TP group; under DCP the all-gathers of "
        s += "absorbed queries and log-sum-exps and the reduce-scatter of partial outputs over the DCP group; with -latcol or -latseq, "
        s += "the all-gather of the latent (q_a_proj's and kv_a_proj_with_mqa's outputs) over the TP group.\n"
        if let m = memoryPerRank {
            s += "max context×batch: tokens a rank can cache in \(Format.bytes(m)) less its weights, × dcp × dp.\n"
            s += "\nCapacity by KV-cache dtype (--kv-cache-dtype; bytes per token over \(perLayer)): tokens cached per rank / context×batch that fits\n"
            let perToken = KVCacheDType.allCases.map { d in layouts.first?.plan.capacity?.first { $0.dtype == d }?.bytesPerToken ?? 0 }
            s += Format.table(["layout"] + zip(KVCacheDType.allCases, perToken).map { "\($0) (\(Format.bytes($1 * L)))" }, layouts.map { r in
                [r.plan.layout] + (r.plan.capacity ?? []).map { "\($0.maxCachedTokensPerRank) / \($0.maxContextTimesBatch)" }
            }) + "\n"
        }
        if let hw = hardware {
            s += "\nProjected per step on \(hw.name) (\(hw.source)), \(perLayer): compute + communication\n"
            s += Format.table(["layout", "decode step", "", "prefill", ""], layouts.map { r in
                let d = r.decodeSeconds ?? [0, 0], f = r.prefillSeconds ?? [0, 0]
                return [r.plan.layout, Format.seconds((d[0] + d[1]) * Double(L)), "(\(Format.seconds(d[0] * Double(L))) + \(Format.seconds(d[1] * Double(L))))",
                        Format.seconds((f[0] + f[1]) * Double(L)), "(\(Format.seconds(f[0] * Double(L))) + \(Format.seconds(f[1] * Double(L))))"]
            }) + "\n"
        }
        s += paddingText()
        s += crossoverText()
        s += "Not modelled: the MoE layers (DP attention needs an all-gather of tokens before a TP MoE and a scatter after), "
        s += "activations, and dp groups' idle time when their batches differ.\n"
        return s
    }

    /// Bytes per rank by layout, weights and KV cache stacked (SVG).
    public func figure() -> String {
        let L = Double(layers)
        var chart = BarChart(
            title: "Bytes per rank by layout: \(OutsideText.escaped(model)), \(ranks) ranks, batch \(batch) × context \(context)",
            subtitle: "\(layers == 1 ? "one layer" : "\(layers) layers"), \(dtype); the busiest rank of each layout (from mla-tp plan --layouts)",
            categories: layouts.map(\.plan.layout),
            series: [.init(name: "attention weights", values: layouts.map { Double($0.plan.weightBytesPerRank) * L / 1e9 }, color: Palette.blue),
                     .init(name: "KV cache", values: layouts.map { Double($0.plan.kvBytesPerRank) * L / 1e9 }, color: Palette.orange)],
            xTitle: "layout", yTitle: "GB per rank")
        chart.valueLabel = { $0 >= 10 ? String(format: "%.0f", $0) : String(format: "%.2f", $0) }
        chart.frame = Frame(width: 860, height: 460)
        return chart.render()
    }
}
