import MLA
import TensorCore
import TensorParallel

extension FlopModel {
    /// A whole serving pass (`MLAAttention.serve`) on one rank: every step of `schedule`, the
    /// projections of its new tokens (kv_b_proj only over the cache) and each sequence's
    /// attention over its cache — absorbed for decode tokens on the absorbed path and, under
    /// decode context parallelism (`dcp` = this rank's share of the tokens), for every step of a
    /// sequence that has tokens cached already; expanded otherwise. Equal to what the serving
    /// forward counts; every count checked.
    public static func serving(config c: MLAConfig, tp: Int, gate: GateLayout, schedule: ServingSchedule, path: DecodePath,
                               sequences: Int, dcp: TokenShare = .whole, latent: LatentProjection = .replicated) throws(CountOverflow) -> Cost {
        var lengths = [Int](repeating: 0, count: sequences)
        var total: [Stage] = []
        for step in schedule.steps {
            let cost = try servingStep(config: c, tp: tp, gate: gate, newTokens: step.step.newTokens,
                                       cached: step.step.slots.map { lengths[$0] }, path: path, dcp: dcp, latent: latent)
            for s in cost.stages {
                if let i = total.firstIndex(where: { $0.name == s.name }) {
                    total[i].flops = try Checked.sum(total[i].flops, s.flops, what: "FLOPs of the serving pass")
                    total[i].elements = try Checked.sum(total[i].elements, s.elements, what: "elements of the serving pass")
                } else {
                    total.append(s)
                }
            }
            for (slot, n) in zip(step.step.slots, step.step.newTokens) { lengths[slot] += n }
        }
        return try Cost(stages: total)
    }

    /// One serving step: sequence b brings `newTokens[b]` tokens after `cached[b]` cached ones.
    public static func servingStep(config c: MLAConfig, tp: Int, gate: GateLayout, newTokens: [Int], cached: [Int],
                                   path: DecodePath, dcp: TokenShare = .whole, latent: LatentProjection = .replicated) throws(CountOverflow) -> Cost {
        let hl = c.localHeads(tp: tp), lora = c.kvLoraRank, cacheRow = lora + c.qkRopeHeadDim
        let what = "attention FLOPs of a serving step"
        let decodeOnly = LatentProjection.isDecodeOnly(newTokens: newTokens, cached: cached)
        var stages = try projections(config: c, tp: tp, gate: gate, tokens: Checked.sum(of: newTokens, what: "tokens of a step"), expandKV: false,
                                     latent: latent, decodeOnly: decodeOnly)
        let at = stages.count - (c.hasSeparateGate ? 2 : 1)
        var expand = Stage(name: "kv_b_proj (cache)", kind: .projection, flops: 0, elements: 0)
        var expanded = Stage(name: "attention", kind: .attention, flops: 0, elements: 0, kernel: .expandedAttention)
        var absorbed = Stage(name: "attention (absorbed)", kind: .attention, flops: 0, elements: 0, weightElements: 0, cacheElements: 0,
                             kernel: .absorbedDecode)
        for (n, before) in zip(newTokens, cached) where n > 0 {
            let nk = try Checked.sum(before, n, what: "tokens of a sequence")
            // Under DCP a sequence that starts in this step attends over its own new tokens, as without DCP.
            if (dcp.count > 1 && before > 0) || (dcp.count == 1 && n == 1 && path == .absorbed) {
                let local = dcp.localCount(nk), attended = dcp.count * hl
                let own = try Checked.product(hl, 2, n, lora, c.qkNopeHeadDim + c.vHeadDim, what: what)
                let per = try Checked.product(attended, 2, n, local, 2 * lora + c.qkRopeHeadDim, what: what)
                absorbed.flops = try Checked.sum(absorbed.flops, own, per, what: what)
                let cachedRows = try Checked.product(local, cacheRow, what: what)
                absorbed.elements = try Checked.sum(absorbed.elements, cachedRows,
                                                    Checked.product(hl, (c.qkNopeHeadDim + c.vHeadDim) * lora + n * (c.qkHeadDim + c.vHeadDim), what: what),
                                                    Checked.product(attended, n, cacheRow + lora, what: what), what: what)
                absorbed.cacheElements = try Checked.sum(absorbed.cacheElements ?? 0, cachedRows, what: what)
                absorbed.weightElements = try Checked.sum(absorbed.weightElements ?? 0,
                                                          Checked.product(hl, (c.qkNopeHeadDim + c.vHeadDim) * lora, what: what), what: what)
            } else {
                let g = try gemm("kv_b_proj (cache)", m: nk, out: hl * (c.qkNopeHeadDim + c.vHeadDim), in: lora)
                expand.flops = try Checked.sum(expand.flops, g.flops, what: what)
                expand.elements = try Checked.sum(expand.elements, g.elements, what: what)
                try expand.addOperands(of: g, cachedRows: nk, width: lora)
                expanded.flops = try Checked.sum(expanded.flops, attentionFlops(config: c, heads: hl, nq: n, nk: nk), what: what)
                expanded.elements = try Checked.sum(expanded.elements, attentionElements(config: c, heads: hl, nq: n, nk: nk), what: what)
            }
        }
        stages.insert(contentsOf: [expand, expanded, absorbed].filter { $0.flops > 0 }, at: at)
        return try Cost(stages: stages)
    }

    /// Elements the busiest rank (rank 0) puts into the latent all-gather of a step of `tokens`
    /// tokens (`MLAAttention`'s sharded latent projections), or nil when the step makes none:
    /// `[T, (q_lora + kv_lora + rope)/tp]` under `column`, `[⌈T/tp⌉, q_lora + kv_lora + rope]`
    /// under `sequence` in a step that splits its tokens.
    public static func latentGatherElements(config c: MLAConfig, tp: Int, latent: LatentProjection, tokens T: Int,
                                            decodeOnly: Bool) throws(CountOverflow) -> Int? {
        let width = (c.qLoraRank ?? 0) + c.kvLoraRank + c.qkRopeHeadDim, what = "elements of the latent all-gather"
        if latent == .column && tp > 1 { return try Checked.product(T, width / tp, what: what) }
        guard latent.splitsTokens(T, ranks: tp, decodeOnly: decodeOnly) else { return nil }
        return try Checked.product(LatentProjection.tokenCounts(T, ranks: tp)[0], width, what: what)
    }
}
