import TensorCore

extension FlopModel {
    /// A whole serving pass (`MLAAttention.serve`) on one rank: every step of `schedule`, the
    /// projections of its new tokens (kv_b_proj only over the cache) and each sequence's
    /// attention over its cache — absorbed for decode tokens on the absorbed path and, under
    /// decode context parallelism (`dcp` = this rank's share of the tokens), for every step of a
    /// sequence that has tokens cached already; expanded otherwise. Equal to what the serving
    /// forward counts.
    public static func serving(config c: MLAConfig, tp: Int, gate: GateLayout, schedule: ServingSchedule, path: DecodePath,
                               sequences: Int, dcp: (index: Int, count: Int) = (0, 1)) -> Cost {
        var lengths = [Int](repeating: 0, count: sequences)
        var total: [Stage] = []
        func add(_ s: Stage) {
            if let i = total.firstIndex(where: { $0.name == s.name }) {
                total[i].flops += s.flops
                total[i].elements += s.elements
            } else {
                total.append(s)
            }
        }
        for step in schedule.steps {
            for s in servingStep(config: c, tp: tp, gate: gate, newTokens: step.step.newTokens,
                                 cached: step.step.slots.map { lengths[$0] }, path: path, dcp: dcp).stages { add(s) }
            for (slot, n) in zip(step.step.slots, step.step.newTokens) { lengths[slot] += n }
        }
        return Cost(stages: total)
    }

    /// One serving step: sequence b brings `newTokens[b]` tokens after `cached[b]` cached ones.
    public static func servingStep(config c: MLAConfig, tp: Int, gate: GateLayout, newTokens: [Int], cached: [Int],
                                   path: DecodePath, dcp: (index: Int, count: Int) = (0, 1)) -> Cost {
        let hl = c.numAttentionHeads / tp, lora = c.kvLoraRank, cacheRow = lora + c.qkRopeHeadDim
        var stages = projections(config: c, tp: tp, gate: gate, tokens: newTokens.reduce(0, +), expandKV: false)
        let at = stages.count - (c.hasSeparateGate ? 2 : 1)
        var expand = Stage(name: "kv_b_proj (cache)", kind: .projection, flops: 0, elements: 0)
        var expanded = Stage(name: "attention", kind: .attention, flops: 0, elements: 0)
        var absorbed = Stage(name: "attention (absorbed)", kind: .attention, flops: 0, elements: 0)
        for (n, before) in zip(newTokens, cached) where n > 0 {
            let nk = before + n
            // Under DCP a sequence that starts in this step attends over its own new tokens, as without DCP.
            if (dcp.count > 1 && before > 0) || (dcp.count == 1 && n == 1 && path == .absorbed) {
                let local = dcp.count > 1 ? localCount(nk, share: dcp) : nk, attended = dcp.count * hl
                absorbed.flops += hl * (2 * n * lora * c.qkNopeHeadDim + 2 * n * c.vHeadDim * lora)
                    + attended * (2 * n * local * lora + 2 * n * local * c.qkRopeHeadDim + 2 * n * lora * local)
                absorbed.elements += local * cacheRow + hl * ((c.qkNopeHeadDim + c.vHeadDim) * lora + n * (c.qkHeadDim + c.vHeadDim))
                    + attended * n * (cacheRow + lora)
            } else {
                let g = gemm("kv_b_proj (cache)", m: nk, out: hl * (c.qkNopeHeadDim + c.vHeadDim), in: lora)
                expand.flops += g.flops
                expand.elements += g.elements
                expanded.flops += attentionFlops(config: c, heads: hl, nq: n, nk: nk)
                expanded.elements += attentionElements(config: c, heads: hl, nq: n, nk: nk)
            }
        }
        stages.insert(contentsOf: [expand, expanded, absorbed].filter { $0.flops > 0 }, at: at)
        return Cost(stages: stages)
    }

    /// Tokens a DCP rank keeps of the first `tokens` of a sequence (`KVCache.localCount`).
    public static func localCount(_ tokens: Int, share: (index: Int, count: Int)) -> Int {
        tokens <= share.index ? 0 : (tokens - share.index + share.count - 1) / share.count
    }
}
