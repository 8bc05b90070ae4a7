import TensorCore
import TensorParallel

/// Buffers of decode context parallelism, reused across steps (they grow to the largest step).
struct ContextExchange {
    var q: [Float] = []          // [Hl·n, width] this rank's absorbed queries
    var qAll: [Float] = []       // [C·Hl·n, width] every rank's
    var out: [Float] = []        // [C·Hl·n, lora] partial outputs over this rank's tokens
    var own: [Float] = []        // [Hl·n, lora] this rank's heads, merged
    var lse: [Float] = []        // [C·Hl·n] this rank's log-sum-exps
    var lseAll: [Float] = []     // [C, C·Hl·n] every rank's

    static func grow(_ a: inout [Float], _ n: Int) { if a.count < n { a = [Float](repeating: 0, count: n) } }
}

/// Where the rows of the sequences that attend over the split cache sit: in a rank's block of
/// the exchange, laid out `[sequence][head][query]`, and among the step's rows of q and attn.
struct ExchangeRows {
    /// New tokens of each sequence of the step that attends this way (0: it does not).
    let counts: [Int]
    /// Sequence b's first query within a block (its rows start at `Hl · blockStart[b]`).
    let blockStart: [Int]
    /// Sequence b's first row among the step's.
    let stepStart: [Int]
    /// Rows of one rank's block: `Hl · Σ counts`.
    let own: Int

    init(attending: [Int], newTokens: [Int], heads hl: Int) {
        counts = attending.map { max($0, 0) }
        var blockStart: [Int] = [], stepStart: [Int] = [], t = 0, u = 0
        for (n, all) in zip(counts, newTokens) { blockStart.append(t); stepStart.append(u); t += n; u += all }
        self.blockStart = blockStart
        self.stepStart = stepStart
        own = hl * t
    }
}

extension MLAAttention {
    /// One serving step's attention under decode context parallelism (vLLM's `-dcp`), over a
    /// cache that keeps on DCP index k of C only the tokens with cache index i mod C = k
    /// (`TokenShare`):
    ///
    /// 1. each rank absorbs its own heads' queries, `[q̃_h | q_rope_h]`            `[Hl·n, lora+rope]`
    /// 2. all-gather them over the DCP group                                        `[C·Hl·n, lora+rope]`
    /// 3. each rank attends every gathered query over its own cached tokens: a partial output
    ///    `softmax · latent` and a log-sum-exp per head and query                  `[C·Hl·n, lora]`, `[C·Hl·n]`
    /// 4–5. `Collectives.mergeByLogSumExp`: all-gather the log-sum-exps, scale each partial by
    ///    `e^(lse_k − lse)`, reduce-scatter the sum; each rank receives its own heads' exact
    ///    `softmax · latent`                                                       `[Hl·n, lora]`
    /// 6. W_UV for its own heads → `[n, Hl·v]`, then o_proj as without DCP.
    ///
    /// Collectives: two all-gathers and one reduce-scatter per step on the DCP communicator,
    /// whatever the number of sequences in the step. Every query sees its own token, so at least
    /// one rank has a visible key. Rows laid out `[rank][sequence][head][query]`, so a rank's
    /// block is contiguous for the collectives.
    ///
    /// `attending[b]` is sequence b's new-token count if it attends this way, 0 if not (it
    /// started in this step and attended locally); the cache already holds the step's tokens.
    func attendContextParallel(_ w: inout Workspace, step: ServingStep, attending: [Int], cache: KVCache, dcp: ContextParallelGroup) throws {
        let C = dcp.share.count, width = absorbed.width, lora = config.kvLoraRank
        let at = ExchangeRows(attending: attending, newTokens: step.newTokens, heads: localHeads), own = at.own
        var x = ContextExchange()
        swap(&x, &w.exchange)                                    // the buffers, without copying them
        defer { swap(&x, &w.exchange) }
        ContextExchange.grow(&x.q, own * width)
        ContextExchange.grow(&x.qAll, C * own * width)
        ContextExchange.grow(&x.out, C * own * lora)
        ContextExchange.grow(&x.own, own * lora)
        ContextExchange.grow(&x.lse, C * own)
        ContextExchange.grow(&x.lseAll, C * C * own)

        absorbQueries(w.q, at, into: &x.q)                                                  // 1. [Hl·n, width]
        try exchange(dcp.collectives) {                                                     // 2. [C·Hl·n, width]
            try x.q.withUnsafeBufferPointer { q in try x.qAll.withUnsafeMutableBufferPointer { all in
                try dcp.collectives.allGather(UnsafeBufferPointer(rebasing: q[0 ..< own * width]),
                                              into: UnsafeMutableBufferPointer(rebasing: all[0 ..< C * own * width]))
            } }
        }
        try attendShare(&x, scores: &w.scores, step: step, at, cache: cache, ranks: C)      // 3. [C·Hl·n, lora], [C·Hl·n]
        try exchange(dcp.collectives) {                                                     // 4–5. [Hl·n, lora]
            try x.out.withUnsafeMutableBufferPointer { o in try x.lse.withUnsafeBufferPointer { l in
                try x.lseAll.withUnsafeMutableBufferPointer { all in try x.own.withUnsafeMutableBufferPointer { mine in
                    try dcp.collectives.mergeByLogSumExp(UnsafeMutableBufferPointer(rebasing: o[0 ..< C * own * lora]), width: lora,
                                                         logSumExps: UnsafeBufferPointer(rebasing: l[0 ..< C * own]),
                                                         gathered: UnsafeMutableBufferPointer(rebasing: all[0 ..< C * C * own]),
                                                         into: UnsafeMutableBufferPointer(rebasing: mine[0 ..< own * lora]))
                } }
            } }
        }
        // The merged softmax · latent stored once in the layer's precision (the partials and their
        // log-sum-exp merge stay f32, as a split-KV decode kernel's combine step keeps them).
        if own > 0 { x.own.withUnsafeMutableBufferPointer { Kernels.round($0.baseAddress!, rows: own, cols: lora, ld: lora, to: precision) } }
        expandMerged(x.own, at, into: &w.attn)                                              // 6. [n, Hl·v]
    }

    /// Step 1: this rank's heads' absorbed queries `[q̃_h | q_rope_h]` into its block, `[sequence][head][query]`.
    private func absorbQueries(_ q: Matrix, _ at: ExchangeRows, into block: inout [Float]) {
        let hl = localHeads, width = absorbed.width, ldq = q.cols
        q.storage.withUnsafeBufferPointer { q in kvB.weight.withGemmSource { wb in
            block.withUnsafeMutableBufferPointer { dst in
                for (b, n) in at.counts.enumerated() where n > 0 {
                    absorbed.absorb(q: q.baseAddress! + at.stepStart[b] * ldq, ldq: ldq, kvB: wb, heads: 0..<hl, nq: n,
                                    into: dst.baseAddress! + hl * at.blockStart[b] * width)
                }
            }
        } }
    }

    /// Step 3: every gathered query over this rank's share of its sequence's cache; a query at
    /// cache index p sees the local rows of the tokens up to p.
    private func attendShare(_ x: inout ContextExchange, scores: inout [Float], step: ServingStep, _ at: ExchangeRows,
                             cache: KVCache, ranks C: Int) throws {
        let hl = localHeads, width = absorbed.width, lora = config.kvLoraRank, own = at.own
        for (b, n) in at.counts.enumerated() where n > 0 {
            let slot = step.slots[b], nk = cache.localLengths[slot], first = cache.lengths[slot] - n
            let need = hl * n * nk
            if scores.count < need { scores = [Float](repeating: 0, count: need) }
            let keys = cache.rows(slot: slot)
            x.qAll.withUnsafeBufferPointer { qs in x.out.withUnsafeMutableBufferPointer { ol in
                x.lse.withUnsafeMutableBufferPointer { lse in scores.withUnsafeMutableBufferPointer { s in
                    for k in 0..<C {
                        let row = k * own + hl * at.blockStart[b]
                        absorbed.attend(qs.baseAddress! + row * width, rows: hl * n, keys: keys,
                                        visible: { cache.share.localCount(first + $0 % n + 1) }, scores: s.baseAddress!,
                                        into: ol.baseAddress! + row * lora, lse: lse.baseAddress! + row)
                    }
                } }
            } }
            counters.attentionFlops += try absorbed.flops(nq: n, nk: nk, attendedHeads: C * hl)
        }
    }

    /// Step 6: W_UV for this rank's heads over the merged `softmax · latent`, into the step's rows of `attn`.
    private func expandMerged(_ merged: [Float], _ at: ExchangeRows, into attn: inout Matrix) {
        let hl = localHeads, lora = config.kvLoraRank, ldo = attn.cols
        let kernel = merged.withUnsafeBufferPointer { ol in kvB.weight.withGemmSource { wb in
            attn.storage.withUnsafeMutableBufferPointer { out in
                var k = GemmKernel.empty
                for (b, n) in at.counts.enumerated() where n > 0 {
                    k = absorbed.expand(ol.baseAddress! + hl * at.blockStart[b] * lora, kvB: wb, heads: 0..<hl, nq: n,
                                        out: out.baseAddress! + at.stepStart[b] * ldo, ldo: ldo)
                }
                return k
            }
        } }
        counters.record(kernel, for: kvB.name)
    }

    /// Runs one of the exchanges and records it as the `dcp` stage.
    func exchange(_ dcp: Collectives, _ body: () throws -> Void) throws {
        let mark = dcp.segments.count
        try body()
        recordCollectives(dcp, since: mark, as: .contextExchange)
    }
}
