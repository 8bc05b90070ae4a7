import TensorCore
import TensorParallel

/// The invariant forward's attention and o_proj (`ForwardMode.invariant`, docs/invariance.md).
extension MLAAttention {
    /// The kernels the projections run on in this layer's mode.
    var kernels: ProductKernels { mode == .invariant ? .fixedOrder : .fastest }

    /// A plain forward's attention: each sequence over its own new tokens' latents (`kva`, as an
    /// exact cache holds them).
    func attendInvariant(_ w: inout Workspace, batch: Batch) throws {
        let kva = w.kva
        try kva.storage.withUnsafeBufferPointer { k in
            for b in 0..<batch.sequenceCount {
                let seq = batch.tokens(of: b)
                guard !seq.isEmpty else { continue }
                let keys = CachedRows(rows: k.baseAddress! + seq.lowerBound * kva.cols, count: seq.count, width: kva.cols)
                try attendInvariant(&w, keys: keys, first: 0, queryRow: seq.lowerBound, queries: seq.count)
            }
        }
    }

    /// `queries` new tokens from row `queryRow` of q, at cache indices `first ..< first + queries`,
    /// attend over `keys` (every cached row of their sequence, this rank holding all of them):
    /// absorbed queries per group of heads, the key classes' partials merged along the tree,
    /// then W_UV, into the same rows of `attn`.
    func attendInvariant(_ w: inout Workspace, keys: CachedRows, first: Int, queryRow row: Int, queries n: Int) throws {
        let inv = invariant, hl = localHeads, g = inv.groupHeads(nq: n), ldq = w.q.cols, ldo = w.attn.cols
        var b = InvariantBuffers()
        swap(&b, &w.invariant)                                   // the buffers, without copying them
        defer { swap(&b, &w.invariant) }
        ContextExchange.grow(&b.qs, g * n * inv.width)
        ContextExchange.grow(&b.records, g * n * inv.recordWidth)
        ContextExchange.grow(&b.ol, g * n * config.kvLoraRank)
        w.q.storage.withUnsafeBufferPointer { q in
            w.attn.storage.withUnsafeMutableBufferPointer { attn in
                kvB.weight.withGemmSource { wb in
                    for h0 in stride(from: 0, to: hl, by: g) {
                        let heads = h0 ..< min(h0 + g, hl), rows = heads.count * n
                        inv.absorb(q: q.baseAddress! + row * ldq, ldq: ldq, kvB: wb, heads: heads, nq: n, into: &b.qs)
                        inv.partials(b.qs, rows: rows, keys: keys, share: .whole, visible: { first + $0 % n + 1 }, into: &b.records,
                                     scratch: &b.scratch)
                        inv.finish(b.records, rows: rows, into: &b.ol)
                        inv.expand(b.ol, kvB: wb, heads: heads, nq: n, out: attn.baseAddress! + row * ldo, ldo: ldo)
                    }
                }
            }
        }
        counters.record(.fixedOrder(FixedOrderGemm.isa), for: kvB.name)
        counters.attentionFlops += try absorbed.flops(nq: n, nk: keys.count)
    }

    /// Decode context parallelism's step in the invariant mode: every rank's absorbed queries
    /// gathered, each rank's partials over the key classes it holds (a subtree of the tree), the
    /// rest of the tree over the DCP group (`treeReduce`, `.strideFirst`), and W_UV for its own
    /// heads. `attending` as for `attendContextParallel`.
    func attendContextParallelInvariant(_ w: inout Workspace, step: ServingStep, attending: [Int], cache: KVCache,
                                        dcp: ContextParallelGroup) throws {
        let inv = invariant, hl = localHeads, width = inv.width, rw = inv.recordWidth, lora = config.kvLoraRank
        let C = dcp.share.count, me = dcp.share.index, ldq = w.q.cols, ldo = w.attn.cols
        precondition(dcp.collectives.communicator.map { $0.rank == me } ?? (me == 0), "the DCP communicator's ranks must be the token shares' indices")
        let at = ExchangeRows(attending: attending, newTokens: step.newTokens, heads: hl), own = at.own
        var qOwn = [Float](repeating: 0, count: own * width), qAll = [Float](repeating: 0, count: C * own * width)
        var records = [Float](repeating: 0, count: C * own * rw), ol = [Float](repeating: 0, count: own * lora)
        w.q.storage.withUnsafeBufferPointer { q in kvB.weight.withGemmSource { wb in
            qOwn.withUnsafeMutableBufferPointer { dst in
                for (b, n) in at.counts.enumerated() where n > 0 {
                    inv.absorb(q: q.baseAddress! + at.stepStart[b] * ldq, ldq: ldq, kvB: wb, heads: 0..<hl, nq: n,
                               into: dst.baseAddress! + hl * at.blockStart[b] * width)
                }
            }
        } }
        try exchange(dcp.collectives) {
            try qOwn.withUnsafeBufferPointer { s in try qAll.withUnsafeMutableBufferPointer { try dcp.collectives.allGather(s, into: $0) } }
        }
        for (b, n) in at.counts.enumerated() where n > 0 {
            let slot = step.slots[b], first = cache.lengths[slot] - n, keys = cache.rows(slot: slot)
            for k in 0..<C {
                let row = k * own + hl * at.blockStart[b]
                qAll.withUnsafeBufferPointer { qs in records.withUnsafeMutableBufferPointer { rec in
                    inv.partials(qs.baseAddress! + row * width, rows: hl * n, keys: keys, share: cache.share,
                                 visible: { first + $0 % n + 1 }, into: rec.baseAddress! + row * rw, scratch: &w.invariant.scratch)
                } }
            }
            counters.attentionFlops += try absorbed.flops(nq: n, nk: cache.localLengths[slot], attendedHeads: C * hl)
        }
        try exchange(dcp.collectives) {
            try records.withUnsafeMutableBufferPointer { buffer in
                try dcp.collectives.treeReduce(buffer, pairing: .strideFirst, as: .reduce, scratch: &w.tree) { a, b, count in
                    InvariantAttention.merge(a, b, count: count / rw, lora: lora)
                }
            }
        }
        records.withUnsafeBufferPointer { rec in ol.withUnsafeMutableBufferPointer { inv.finish(rec.baseAddress! + me * own * rw, rows: own, into: $0.baseAddress!) } }
        ol.withUnsafeBufferPointer { o in w.attn.storage.withUnsafeMutableBufferPointer { attn in kvB.weight.withGemmSource { wb in
            for (b, n) in at.counts.enumerated() where n > 0 {
                inv.expand(o.baseAddress! + hl * at.blockStart[b] * lora, kvB: wb, heads: 0..<hl, nq: n,
                           out: attn.baseAddress! + at.stepStart[b] * ldo, ldo: ldo)
            }
        } } }
        counters.record(.fixedOrder(FixedOrderGemm.isa), for: kvB.name)
    }

    /// o_proj in the invariant mode: this rank's `B/tp` head blocks (`InvariantLayout.blocks`), each
    /// block's partial `[T, hidden]` a product of the same shape at every tp, summed in the
    /// binary tree whose subtrees are the blocks; the ranks then sum the top of the same tree
    /// (`treeReduce`, `.adjacentFirst`), and the bias is added once.
    func outputProjectionInvariant(into out: inout Matrix, tokens T: Int, collectives: Collectives) throws {
        let hidden = config.hiddenSize, blocks = InvariantLayout.blocks(heads: config.numAttentionHeads)
        let local = blocks / shard.size, kb = config.attnOutWidth / blocks
        let attn = workspace.attn                                           // [T, H/tp·v]
        precondition(oProj.order == .inOut, "the invariant mode keeps o_proj [in, out] (MLAAttention.init)")
        let ldw = oProj.weight.cols                                         // [H/tp·v, hidden]: block b is rows b·kb ..< (b+1)·kb
        try timed(.oProj) {
            // A binary counter over the blocks: sums[l] holds a finished subtree of 2^l blocks; the
            // next block's partial carries up, left subtree + right, as far as it completes one.
            let levels = local.trailingZeroBitCount + 1
            var sums = workspace.blockSums
            workspace.blockSums = []
            defer { workspace.blockSums = sums }
            while sums.count < levels + 1 { sums.append(Matrix(rows: 0, cols: 0)) }
            var filled = [Bool](repeating: false, count: levels)
            var carry = sums.removeLast()
            for b in 0..<local {
                carry.reshapeDiscarding(rows: T, cols: hidden)                 // [T, hidden]: block b's partial, f32
                attn.storage.withUnsafeBufferPointer { a in oProj.weight.withGemmSource { wo in
                    carry.storage.withUnsafeMutableBufferPointer { p in
                        guard T > 0 else { return }
                        FixedOrderGemm.nn(m: T, n: hidden, k: kb, a: a.baseAddress! + b * kb, lda: attn.cols, b: wo.advanced(by: b * kb * ldw),
                                          ldb: ldw, c: p.baseAddress!, ldc: hidden, isa: FixedOrderGemm.isa)
                    }
                } }
                var level = 0
                while filled[level] {
                    if T > 0 {
                        sums[level].storage.withUnsafeMutableBufferPointer { l in carry.storage.withUnsafeBufferPointer { r in
                            FixedTreeReduction.add(l.baseAddress!, r.baseAddress!, count: T * hidden)
                        } }
                    }
                    filled[level] = false
                    swap(&carry, &sums[level])
                    level += 1
                }
                swap(&carry, &sums[level])
                filled[level] = true
            }
            swap(&out, &sums[levels - 1])                                     // the root: every local block
            sums.append(carry)
        }
        counters.record(.fixedOrder(FixedOrderGemm.isa), for: oProj.name)
        try countProjection(T, oProj)
        let mark = collectives.segments.count
        try out.storage.withUnsafeMutableBufferPointer { buffer in
            try collectives.treeReduce(buffer, pairing: .adjacentFirst, as: .reduce, scratch: &workspace.tree, combine: FixedTreeReduction.add)
        }
        recordCollectives(collectives, since: mark, as: .allReduce)
        // Hashed as reduced (f32, with the bias), before it is stored in the layer's precision, so
        // that a change in the tree shows in bf16 too, where one rounding could hide it.
        if let bias = oProj.bias { try out.addRowBias(bias) }
        try guardStage(.oProj, out)
        stageHashes?.record(.oProj, out)
        out.round(to: precision)
    }
}
