import TensorCore
import TensorParallel

extension MLAAttention {
    /// How this rank holds q_a_proj and kv_a_proj_with_mqa (`--latent-proj`).
    public var latentProjection: LatentProjection { down.scheme }

    /// q_a_proj and kv_a_proj_with_mqa for the step's T tokens: `qa [T, q_lora]` (with q_lora)
    /// and `kva [T, kv_lora + rope]`, whole on every rank and stored in the layer's precision,
    /// however the rank holds the projections. Sharded, this rank computes its columns (or its
    /// run of tokens) into `qaPart` / `kvaPart`, writes them into its block of the gather buffer
    /// and one all-gather over `collectives` (the TP group) brings every rank's block. The
    /// products are timed as q and kv, the gather and its copies as `latent`.
    func downProjections(_ x: Matrix, _ w: inout Workspace, collectives: Collectives, decodeOnly: Bool) throws {
        let T = x.rows, p = shard.size
        if down.qA != nil { w.qa.reshapeDiscarding(rows: T, cols: down.qWidth) }           // [T, q_lora]
        w.kva.reshapeDiscarding(rows: T, cols: down.kvWidth)                               // [T, kv_lora+rope]
        let split = down.scheme.splitsTokens(T, ranks: p, decodeOnly: decodeOnly)
        guard split || (down.scheme == .column && p > 1) else {
            try project(x, rows: T, into: &w.qa, &w.kva)
            return
        }
        precondition(collectives.size == p, "the latent all-gather runs over the TP group of \(p) ranks, not \(collectives.size)")
        let blocks = down.blocks(tokens: T, ranks: p, splitTokens: split), mine = blocks[shard.rank]
        if split {
            w.xPart.reshapeDiscarding(rows: mine.rows.count, cols: x.cols)                 // [T_r, hidden]: this rank's tokens
            x.storage.withUnsafeBufferPointer { src in
                w.xPart.storage.withUnsafeMutableBufferPointer { dst in
                    guard let d = dst.baseAddress else { return }
                    d.update(from: src.baseAddress! + mine.rows.lowerBound * x.cols, count: dst.count)
                }
            }
        }
        if down.qA != nil { w.qaPart.reshapeDiscarding(rows: mine.rows.count, cols: mine.qCols.count) }   // [T_r, q_lora] or [T, q_lora/tp]
        w.kvaPart.reshapeDiscarding(rows: mine.rows.count, cols: mine.kvCols.count)                        // [T_r, kv_a] or [T, kv_a/tp]
        try project(split ? w.xPart : x, rows: mine.rows.count, into: &w.qaPart, &w.kvaPart)
        try timed(.latentGather) { try gatherLatent(&w, blocks: blocks, collectives: collectives) }
    }

    /// The products of this rank's part: x `[n, hidden]` → `qa`, `kva` (already shaped), counted.
    private func project(_ x: Matrix, rows n: Int, into qa: inout Matrix, _ kva: inout Matrix) throws {
        if let qA = down.qA {
            try timed(.q) {
                counters.record(try qA.forward(x, into: &qa, kernels: kernels), for: qA.layer.name)
                try countProjection(n, qA.layer)
            }
        }
        try timed(.kv) {
            counters.record(try down.kvA.forward(x, into: &kva, kernels: kernels), for: down.kvA.layer.name)
            try countProjection(n, down.kvA.layer)
        }
    }

    /// This rank's `qaPart | kvaPart` into its block, the all-gather, and every block into `qa`
    /// and `kva`; in bf16 the buffer holds bf16 (the values are bf16 already, so both copies are exact).
    private func gatherLatent(_ w: inout Workspace, blocks: [LatentProjections.Block], collectives: Collectives) throws {
        let counts = blocks.map(\.count)
        if precision == .bf16 {
            var wire = w.latentWire16
            w.latentWire16 = []                                                   // hand the buffer over without copying it
            defer { w.latentWire16 = wire }
            try exchange(&wire, zero: BFloat16(bitPattern: 0), blocks: blocks, &w,
                         gather: { try collectives.allGather(inPlace: $0, counts: counts) },
                         pack: { BF16.round(rows: $0, width: $1, $2, ld: $3, into: $4, ldd: $5) },
                         unpack: { BF16.widen(rows: $0, width: $1, $2, ld: $3, into: $4, ldd: $5) })
        } else {
            var wire = w.latentWire
            w.latentWire = []
            defer { w.latentWire = wire }
            try exchange(&wire, zero: 0, blocks: blocks, &w, gather: { try collectives.allGather(inPlace: $0, counts: counts) },
                         pack: Self.copyRows, unpack: Self.copyRows)
        }
    }

    /// The gather in elements `E`: grows `wire` to every block, packs this rank's parts into its
    /// block, gathers, and unpacks every block into the whole latent. `pack` and `unpack` move
    /// one rectangle (rows, width, source, its row stride, destination, its row stride).
    private func exchange<E>(_ wire: inout [E], zero: E, blocks: [LatentProjections.Block], _ w: inout Workspace,
                             gather: (UnsafeMutableBufferPointer<E>) throws -> Void,
                             pack: (Int, Int, UnsafePointer<Float>, Int, UnsafeMutablePointer<E>, Int) -> Void,
                             unpack: (Int, Int, UnsafePointer<E>, Int, UnsafeMutablePointer<Float>, Int) -> Void) throws {
        let total = blocks.reduce(0) { $0 + $1.count }, mine = blocks[shard.rank]
        if wire.count < total { wire = [E](repeating: zero, count: total) }
        try wire.withUnsafeMutableBufferPointer { buffer in
            let base = buffer.baseAddress!
            Self.rectangles(mine, &w.qaPart, &w.kvaPart, whole: false) { m, ld, width, at in
                pack(mine.rows.count, width, m, ld, base + mine.offset + at, mine.width)
            }
            try gather(UnsafeMutableBufferPointer(start: base, count: total))
            for b in blocks {
                Self.rectangles(b, &w.qa, &w.kva, whole: true) { m, ld, width, at in
                    unpack(b.rows.count, width, base + b.offset + at, b.width, m, ld)
                }
            }
        }
    }

    /// Rows `rows` × `width` from `src` (row stride `ld`) to `dst` (row stride `ldd`).
    private static func copyRows(_ rows: Int, _ width: Int, _ src: UnsafePointer<Float>, _ ld: Int, _ dst: UnsafeMutablePointer<Float>, _ ldd: Int) {
        for r in 0..<rows { (dst + r * ldd).update(from: src + r * ld, count: width) }
    }

    /// Block `b`'s two rectangles, q_a's columns then kv_a's, each handed to `body` as (its first
    /// element in `qa` / `kva`, that matrix's row stride, its width, its column within a block
    /// row). `whole`: `qa` and `kva` are the whole latent (the block sits at its rows and
    /// columns); otherwise they are this rank's parts, exactly the block's size. A block with no
    /// rows or no columns is skipped.
    private static func rectangles(_ b: LatentProjections.Block, _ qa: inout Matrix, _ kva: inout Matrix, whole: Bool,
                                   _ body: (UnsafeMutablePointer<Float>, Int, Int, Int) -> Void) {
        guard !b.rows.isEmpty else { return }
        for (isQ, cols) in [(true, b.qCols), (false, b.kvCols)] where !cols.isEmpty {
            let ld = isQ ? qa.cols : kva.cols, first = whole ? b.rows.lowerBound * ld + cols.lowerBound : 0
            let at = isQ ? 0 : b.qCols.count
            if isQ { qa.storage.withUnsafeMutableBufferPointer { body($0.baseAddress! + first, ld, cols.count, at) } }
            else { kva.storage.withUnsafeMutableBufferPointer { body($0.baseAddress! + first, ld, cols.count, at) } }
        }
    }
}
