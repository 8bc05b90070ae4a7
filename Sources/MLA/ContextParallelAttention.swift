import Foundation
import TensorCore
import TensorParallel

/// Buffers of decode context parallelism, reused across steps (they grow to the largest step).
struct ContextExchange {
    var q: [Float] = []          // [Hl·n, width] this rank's absorbed queries, then [C·Hl·n, width] every rank's
    var qAll: [Float] = []
    var out: [Float] = []        // [C·Hl·n, lora] partial outputs, then this rank's merged [Hl·n, lora]
    var own: [Float] = []
    var lse: [Float] = []        // [C·Hl·n] this rank's log-sum-exps, then [C][C·Hl·n] every rank's
    var lseAll: [Float] = []

    static func grow(_ a: inout [Float], _ n: Int) { if a.count < n { a = [Float](repeating: 0, count: n) } }
}

extension MLAAttention {
    /// One serving step's attention under decode context parallelism (vLLM's `-dcp`), over a
    /// cache that keeps on DCP index k of C only the tokens with cache index i mod C = k:
    ///
    /// 1. each rank absorbs its own heads' queries, `[q̃_h | q_rope_h]`            `[Hl·n, lora+rope]`
    /// 2. all-gather them over the DCP group                                        `[C·Hl·n, lora+rope]`
    /// 3. each rank attends every gathered query over its own cached tokens: a partial output
    ///    `softmax · latent` and a log-sum-exp per head and query                  `[C·Hl·n, lora]`, `[C·Hl·n]`
    /// 4. all-gather the log-sum-exps; scale each partial output by `e^(lse_k − lse)`, where
    ///    `lse = log Σ_k e^(lse_k)` is the log-sum-exp over every rank's keys
    /// 5. reduce-scatter the scaled outputs (a sum over ranks): each rank receives its own heads'
    ///    exact `softmax · latent`                                                 `[Hl·n, lora]`
    /// 6. W_UV for its own heads → `[n, Hl·v]`, then o_proj as without DCP.
    ///
    /// Collectives: two all-gathers and one reduce-scatter per step on the DCP communicator,
    /// whatever the number of sequences in the step. Every query sees its own token, so at least
    /// one rank has a visible key and `lse` is finite. Rows laid out `[rank][sequence][head][query]`,
    /// so a rank's block is contiguous for the collectives.
    ///
    /// `attending[b]` is sequence b's new-token count if it attends this way, 0 if not (it
    /// started in this step and attended locally); the cache already holds the step's tokens.
    func attendContextParallel(_ w: inout Workspace, step: ServingStep, attending: [Int], cache: KVCache, dcp: Collectives) throws {
        let C = dcp.size, hl = localHeads, width = absorbed.width, lora = config.kvLoraRank
        let counts = attending.map { max($0, 0) }
        let own = hl * counts.reduce(0, +)                                    // rows of this rank's block
        var starts: [Int] = [], rows: [Int] = [], t = 0, u = 0                 // each sequence's first row in a block, and in w.q
        for (n, all) in zip(counts, step.newTokens) { starts.append(t); rows.append(u); t += n; u += all }
        ContextExchange.grow(&w.exchange.q, own * width)
        ContextExchange.grow(&w.exchange.qAll, C * own * width)
        ContextExchange.grow(&w.exchange.out, C * own * lora)
        ContextExchange.grow(&w.exchange.own, own * lora)
        ContextExchange.grow(&w.exchange.lse, C * own)
        ContextExchange.grow(&w.exchange.lseAll, C * C * own)
        let ldq = w.q.cols, ldo = w.attn.cols
        var x = w.exchange
        defer { w.exchange = x }

        // 1–2. absorbed queries, gathered: block k holds rank k's heads, [sequence][head][query].
        w.q.storage.withUnsafeBufferPointer { q in kvB.weight.withGemmSource { wb in
            x.q.withUnsafeMutableBufferPointer { dst in
                for (b, n) in counts.enumerated() where n > 0 {
                    absorbed.absorb(q: q.baseAddress! + rows[b] * ldq, ldq: ldq, kvB: wb, heads: 0..<hl, nq: n,
                                    into: dst.baseAddress! + hl * starts[b] * width)
                }
            }
        } }
        try exchange(dcp) {
            try x.q.withUnsafeBufferPointer { q in try x.qAll.withUnsafeMutableBufferPointer { all in
                try dcp.allGather(UnsafeBufferPointer(rebasing: q[0 ..< own * width]), into: UnsafeMutableBufferPointer(rebasing: all[0 ..< C * own * width]))
            } }
        }

        // 3. every gathered query over this rank's tokens.
        for (b, n) in counts.enumerated() where n > 0 {
            let slot = step.slots[b], nk = cache.localLengths[slot], first = cache.lengths[slot] - n
            let need = hl * n * nk
            if w.scores.count < need { w.scores = [Float](repeating: 0, count: need) }
            cache.withRows(slot: slot) { keys in
                x.qAll.withUnsafeBufferPointer { qs in x.out.withUnsafeMutableBufferPointer { ol in
                    x.lse.withUnsafeMutableBufferPointer { lse in w.scores.withUnsafeMutableBufferPointer { s in
                        for k in 0..<C {
                            let row = k * own + hl * starts[b]
                            absorbed.attend(qs.baseAddress! + row * width, rows: hl * n, cache: keys, nk: nk,
                                            visible: { cache.localCount(first + $0 % n + 1) }, scores: s.baseAddress!,
                                            into: ol.baseAddress! + row * lora, lse: lse.baseAddress! + row)
                        }
                    } }
                } }
            }
            counters.attentionFlops += try absorbed.flops(nq: n, nk: nk, attendedHeads: C * hl)
        }

        // 4. every rank's log-sum-exps; scale each partial output to the whole sequence's softmax.
        try exchange(dcp) {
            try x.lse.withUnsafeBufferPointer { l in try x.lseAll.withUnsafeMutableBufferPointer { all in
                try dcp.allGather(UnsafeBufferPointer(rebasing: l[0 ..< C * own]), into: UnsafeMutableBufferPointer(rebasing: all[0 ..< C * C * own]))
            } }
        }
        for r in 0 ..< C * own {
            var m = -Float.infinity
            for k in 0..<C { m = max(m, x.lseAll[k * C * own + r]) }
            var sum: Float = 0
            for k in 0..<C { sum += Foundation.exp(x.lseAll[k * C * own + r] - m) }
            let mine = x.lse[r], factor = mine == -.infinity ? 0 : Foundation.exp(mine - m) / sum
            for j in 0..<lora { x.out[r * lora + j] *= factor }
        }

        // 5–6. sum over ranks, keeping this rank's heads; then W_UV into attn.
        try exchange(dcp) {
            try x.out.withUnsafeBufferPointer { o in try x.own.withUnsafeMutableBufferPointer { mine in
                try dcp.reduceScatter(UnsafeBufferPointer(rebasing: o[0 ..< C * own * lora]), into: UnsafeMutableBufferPointer(rebasing: mine[0 ..< own * lora]))
            } }
        }
        // The merged softmax · latent stored once in the layer's precision (the partials and their
        // log-sum-exp merge stay f32, as a split-KV decode kernel's combine step keeps them).
        if own > 0 { x.own.withUnsafeMutableBufferPointer { Kernels.round($0.baseAddress!, rows: own, cols: lora, ld: lora, to: precision) } }
        let kernel = x.own.withUnsafeBufferPointer { ol in kvB.weight.withGemmSource { wb in
            w.attn.storage.withUnsafeMutableBufferPointer { attn in
                var k = GemmKernel.empty
                for (b, n) in counts.enumerated() where n > 0 {
                    k = absorbed.expand(ol.baseAddress! + hl * starts[b] * lora, kvB: wb, heads: 0..<hl, nq: n,
                                        out: attn.baseAddress! + rows[b] * ldo, ldo: ldo)
                }
                return k
            }
        } }
        counters.record(kernel, for: kvB.name)
    }

    /// Runs one of the exchanges and records it as the `dcp` stage.
    private func exchange(_ dcp: Collectives, _ body: () throws -> Void) throws {
        let mark = dcp.segments.count
        try body()
        recordCollectives(dcp, since: mark, as: .contextExchange)
    }
}
