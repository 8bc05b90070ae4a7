import TensorCore
import TensorParallel

extension MLAAttention {
    /// One serving step over the latent cache: sequences with one new token decode (through
    /// `decode`), the others prefill after whatever the cache holds (chunked prefill), all in one
    /// forward, as FastDeploy splits need_do_prefill / need_do_decode. New tokens' latents and
    /// k_rope are appended to `cache` first. `positions` defaults to each slot's cached length
    /// onwards. `collectives` is the TP group's (o_proj's allreduce); `dcp`, when given, the DCP
    /// group's, and `cache` must keep its token share. Returns `[T, hidden]`; with T = 0 every
    /// rank still enters the allreduce.
    public func forward(_ x: Matrix, step: ServingStep, cache: KVCache, decode: DecodePath = .absorbed,
                        positions: [Int]? = nil, collectives: Collectives, dcp: ContextParallelGroup? = nil) throws -> Matrix {
        let start = Clock.now()
        precondition(cache.share == (dcp?.share ?? .whole), "the cache keeps token share \(cache.share) but this rank's is \(dcp?.share ?? .whole)")
        guard x.cols == config.hiddenSize, x.rows == step.tokenCount else {
            throw ShapeError(op: "MLA serving input", x.shape, Shape(step.tokenCount, config.hiddenSize),
                             hint: "one row of hidden_states per new token of the step")
        }
        if let bad = step.slots.first(where: { !(0..<cache.sequenceCount).contains($0) }) {
            throw BatchError.badCuSeqlens("slot \(bad) is outside the cache's \(cache.sequenceCount) sequences")
        }
        var pos = positions ?? []
        if positions == nil {
            for (b, slot) in step.slots.enumerated() { pos += (0..<step.newTokens[b]).map { cache.lengths[slot] + $0 } }
        }
        guard pos.count == x.rows else {
            throw ShapeError(op: "MLA serving positions", Shape(pos.count), Shape(x.rows), hint: "one position per new token")
        }
        stageHashes?.begin(step)
        let decodeOnly = LatentProjection.isDecodeOnly(newTokens: step.newTokens, cached: step.slots.map { cache.lengths[$0] })
        try gatedAttention(x, positions: pos, expandKV: false, collectives: collectives, decodeOnly: decodeOnly) { w in
            try self.attendCached(&w, step: step, cache: cache, decode: decode, dcp: dcp)
        }
        try faultHook?()
        var out = Matrix(rows: x.rows, cols: config.hiddenSize)                     // [T, hidden]
        try outputProjection(into: &out, tokens: x.rows, collectives: collectives)
        counters.seconds = Clock.now() - start
        return out
    }

    /// Prefills each sequence of `batch` into slots `0 ..< B` of an empty `cache`.
    public func prefill(_ x: Matrix, batch: Batch, cache: KVCache, collectives: Collectives, dcp: ContextParallelGroup? = nil) throws -> Matrix {
        let step = try ServingStep(slots: Array(0..<batch.sequenceCount), newTokens: (0..<batch.sequenceCount).map { batch.tokens(of: $0).count })
        return try forward(x, step: step, cache: cache, positions: batch.positions, collectives: collectives, dcp: dcp)
    }

    /// Decodes one new token for every slot of `cache`: x is `[B, hidden]`, row b for slot b.
    public func decode(_ x: Matrix, cache: KVCache, path: DecodePath = .absorbed, collectives: Collectives,
                       dcp: ContextParallelGroup? = nil) throws -> Matrix {
        let step = try ServingStep(slots: Array(0..<cache.sequenceCount), newTokens: Array(repeating: 1, count: cache.sequenceCount))
        return try forward(x, step: step, cache: cache, decode: path, collectives: collectives, dcp: dcp)
    }

    /// Appends the step's latents to the cache, then attends per sequence: absorbed for decode
    /// tokens on the absorbed path, otherwise by expanding the cached latents through kv_b_proj.
    /// Under decode context parallelism (`dcp` over more than one rank) every step over the cache
    /// attends through `attendContextParallel` (absorbed).
    func attendCached(_ w: inout Workspace, step: ServingStep, cache: KVCache, decode: DecodePath, dcp: ContextParallelGroup?) throws {
        if let dcp, dcp.share.count > 1 { return try attendCachedContextParallel(&w, step: step, cache: cache, dcp: dcp) }
        let ldq = w.q.cols, ldo = w.attn.cols
        var row = 0
        for (b, slot) in step.slots.enumerated() {
            let n = step.newTokens[b]
            guard n > 0 else { continue }
            cache.append(slot: slot, from: w.kva, rows: row ..< row + n)
            let nk = cache.lengths[slot]
            if mode == .invariant {                                 // one form for every token, whatever the path asked
                try attendInvariant(&w, keys: cache.rows(slot: slot), first: nk - n, queryRow: row, queries: n)
            } else if n == 1 && decode == .absorbed {
                let need = absorbed.workspaceCount(nq: n, nk: nk)
                if w.scores.count < need { w.scores = [Float](repeating: 0, count: need) }
                let keys = cache.rows(slot: slot)
                let kernel = w.q.storage.withUnsafeBufferPointer { q in
                    kvB.weight.withGemmSource { wb in
                        w.attn.storage.withUnsafeMutableBufferPointer { attn in
                            w.scores.withUnsafeMutableBufferPointer { work in
                                absorbed.run(q: q.baseAddress! + row * ldq, ldq: ldq, keys: keys, kvB: wb,
                                             out: attn.baseAddress! + row * ldo, ldo: ldo, nq: n, work: work.baseAddress!)
                            }
                        }
                    }
                }
                counters.record(kernel, for: kvB.name)
                counters.attentionFlops += try absorbed.flops(nq: n, nk: nk)
            } else {
                try attendExpanded(&w, keys: cache.rows(slot: slot), queryRow: row, queries: n)
            }
            row += n
        }
    }

    /// Under decode context parallelism: sequences that start in this step (nothing cached
    /// before it) attend over their own new tokens, which every rank has, as without DCP (the
    /// prefill of an engine); the rest attend over the split cache (`attendContextParallel`).
    /// Every rank keeps only its share of the new tokens.
    func attendCachedContextParallel(_ w: inout Workspace, step: ServingStep, cache: KVCache, dcp: ContextParallelGroup) throws {
        var row = 0, cached = step.newTokens
        for (b, slot) in step.slots.enumerated() {
            let n = step.newTokens[b]
            if cache.lengths[slot] == 0 && n > 0 {
                let kva = w.kva
                try kva.storage.withUnsafeBufferPointer { k in
                    let keys = cache.asCached(k.baseAddress! + row * kva.cols, count: n)
                    if mode == .invariant { try attendInvariant(&w, keys: keys, first: 0, queryRow: row, queries: n) }
                    else { try attendExpanded(&w, keys: keys, queryRow: row, queries: n) }
                }
                cached[b] = 0
            }
            cache.append(slot: slot, from: w.kva, rows: row ..< row + n)
            row += n
        }
        if cached.contains(where: { $0 > 0 }) {
            if mode == .invariant { try attendContextParallelInvariant(&w, step: step, attending: cached, cache: cache, dcp: dcp) }
            else { try attendContextParallel(&w, step: step, attending: cached, cache: cache, dcp: dcp) }
        }
    }

    /// `queries` new tokens from row `queryRow` of q attend over the cached rows `keys`
    /// (`[nk, kv_lora + rope]`), expanded through kv_b_proj a tile at a time: the last query sees them all.
    func attendExpanded(_ w: inout Workspace, keys: CachedRows, queryRow row: Int, queries n: Int) throws {
        let c = config, ldq = w.q.cols, ldo = w.attn.cols, nk = keys.count
        try expandCached(keys, into: &w.kvCached)                                  // [nk, H/tp·(nope+v) + rope]
        let need = AttentionKernel.blockRows * nk
        if w.scores.count < need { w.scores = [Float](repeating: 0, count: need) }
        let ldk = w.kvCached.cols
        w.q.storage.withUnsafeBufferPointer { q in
            w.kvCached.storage.withUnsafeBufferPointer { kv in
                w.attn.storage.withUnsafeMutableBufferPointer { attn in
                    w.scores.withUnsafeMutableBufferPointer { scores in
                        let ops = AttentionKernel.Operands(
                            q: q.baseAddress! + row * ldq, ldq: ldq,
                            kNope: kv.baseAddress!, v: kv.baseAddress! + c.qkNopeHeadDim, ldk: ldk,
                            headStrideK: c.qkNopeHeadDim + c.vHeadDim, kRope: kv.baseAddress! + ldk - c.qkRopeHeadDim,
                            ldkr: ldk, out: attn.baseAddress! + row * ldo, ldo: ldo, nq: n, nk: nk)
                        kernel.run(ops, scores: scores.baseAddress!)
                    }
                }
            }
        }
        counters.attentionFlops += try kernel.flops(nq: n, nk: nk)
    }
}
