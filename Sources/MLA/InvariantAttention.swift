import TensorCore
import TensorParallel

/// The attention of the invariant forward: the absorbed form (`AbsorbedKernel`'s algebra) for
/// every token, whether it arrives in a prefill, a chunk or a decode step, with every reduction
/// in an order no layout or batch changes.
///
/// The keys of a sequence fall into `InvariantLayout.keyClasses` = 8 fixed classes, class j
/// holding cache indices i ≡ j (mod 8). For one query row and one class, the partial is
/// `(o, m, l)`: m the largest visible score, l = Σ e^(s−m) and o = Σ e^(s−m)·latent, each a sum
/// over the class's keys in ascending order (scores and o through `FixedOrderGemm`). The eight
/// partials merge in one tree, pairs (j, j+4), then (j, j+2), then (0, 1):
///
///     level 3                    ┌──────────── root ────────────┐
///     level 2             ┌──── ≡0 (mod 2) ───┐        ┌──── ≡1 (mod 2) ───┐
///     level 1          ≡0 (mod 4)     ≡2 (mod 4)    ≡1 (mod 4)     ≡3 (mod 4)
///     classes          0     4        2     6       1     5        3     7
///
/// Under decode context parallelism over C ranks (C | 8), rank k keeps the tokens i ≡ k (mod C):
/// exactly the classes of one subtree. It merges those locally, and the ranks merge the rest of
/// the tree pairwise (`FixedTreeReduction.strideFirst`): the same tree, so the same bits, at
/// every C. The merge is symmetric (both partners of an exchange compute the same bits).
struct InvariantAttention {
    let heads: Int          // local heads
    let nope: Int
    let rope: Int
    let vDim: Int
    let lora: Int
    let scale: Float
    /// What q̃ and the attention over the latent are stored in (the layer's activations).
    let precision: Precision
    let qStride: Int

    /// Floats per query row `[q̃ | q_rope]`, and per partial record `[o (lora) | m | l]`.
    var width: Int { lora + rope }
    var recordWidth: Int { lora + 2 }
    static let classes = InvariantLayout.keyClasses
    /// Query rows whose partials are computed together (their scores and o in one product each);
    /// a prefill's block also bounds the keys it reads to the last row's (causal).
    static let blockRows = 64

    /// The partials' scratch, kept across calls (a fresh allocation would fault its pages in on
    /// every call): each held class's records and scores of one block of rows.
    struct Scratch {
        var parts: [Float] = []
        var scores: [Float] = []
    }

    /// Heads stacked per group for `nq` queries (every head at once for a decode step).
    func groupHeads(nq: Int) -> Int { max(1, min(heads, Self.blockRows / max(nq, 1))) }

    /// `[q̃_h | q_rope_h]` rows for `heads` (local indices) × `nq` queries into `dst`
    /// `[heads.count·nq, width]` (head-major): q̃_h = q_nope_h · W_UK_h through the NN kernel, stored
    /// in `precision`.
    func absorb(q: UnsafePointer<Float>, ldq: Int, kvB: GemmSource, heads: Range<Int>, nq: Int, into dst: UnsafeMutablePointer<Float>) {
        let headRows = nope + vDim
        for (j, h) in heads.enumerated() {
            let qh = q + h * qStride, out = dst + j * nq * width
            FixedOrderGemm.nn(m: nq, n: lora, k: nope, a: qh, lda: ldq, b: kvB.advanced(by: h * headRows * lora), ldb: lora, c: out, ldc: width)
            Kernels.round(out, rows: nq, cols: lora, ld: width, to: precision)
            for i in 0..<nq { (out + i * width + lora).update(from: qh + i * ldq + nope, count: rope) }
        }
    }

    /// Each of `rows` query rows (`qs`, `[rows, width]`) over the keys this rank holds (`keys`,
    /// its local cache rows; `share` which cache indices they are): the partial of its classes,
    /// merged along the tree, as a record `[o | m | l]` in `records` `[rows, recordWidth]`. Row r
    /// sees the cache indices below `visible(r)`.
    func partials(_ qs: UnsafePointer<Float>, rows: Int, keys: CachedRows, share: TokenShare, visible: (Int) -> Int,
                  into records: UnsafeMutablePointer<Float>, scratch: inout Scratch) {
        precondition(Self.classes % share.count == 0, "dcp \(share.count) does not split \(Self.classes) key classes")
        let held = Self.classes / share.count                            // classes this rank holds: local rows q ≡ c (mod held)
        // Rows held in place are one tile: fewer, longer chains per product (the same bits).
        let rw = recordWidth, tiles = keys.whole != nil && keys.count > 0 ? [0 ..< keys.count] : keys.tiles
        ContextExchange.grow(&scratch.parts, held * Self.blockRows * rw)
        for r0 in stride(from: 0, to: rows, by: Self.blockRows) {
            let rb = min(Self.blockRows, rows - r0)
            var seen = [Int](repeating: 0, count: rb)                    // local rows visible to each row
            for r in 0..<rb { seen[r] = min(share.localCount(visible(r0 + r)), keys.count) }
            let reach = seen.max() ?? 0
            let perClass = (reach + held - 1) / held                     // the most keys a class has below reach
            ContextExchange.grow(&scratch.scores, held * rb * perClass)
            scratch.parts.withUnsafeMutableBufferPointer { pp in
                scratch.scores.withUnsafeMutableBufferPointer { sp in
                    let block = ClassBlock(qs: qs + r0 * width, rows: rb, held: held, reach: reach, perClass: perClass, seen: seen,
                                           scores: sp.baseAddress!, parts: pp.baseAddress!, partStride: Self.blockRows * rw)
                    classPartials(block, keys: keys, tiles: tiles)
                    // The local levels of the tree: (c, c + held/2), then (c, c + held/4), …
                    var span = held
                    while span > 1 {
                        span /= 2
                        for c in 0..<span { Self.merge(block.part(c), block.part(c + span), count: rb, lora: lora) }
                    }
                    (records + r0 * rw).update(from: pp.baseAddress!, count: rb * rw)
                }
            }
        }
    }

    /// One block of query rows against the classes a rank holds: class c's keys are local rows
    /// `c, c + held, …` below `reach`; row r sees those below `seen[r]`. Class c's scores are
    /// `[rows, perClass]` at `scores + c·rows·perClass`, its partial records at `part(c)`.
    private struct ClassBlock {
        let qs: UnsafePointer<Float>
        let rows: Int, held: Int, reach: Int, perClass: Int
        let seen: [Int]
        let scores: UnsafeMutablePointer<Float>
        let parts: UnsafeMutablePointer<Float>
        let partStride: Int
        func part(_ c: Int) -> UnsafeMutablePointer<Float> { parts + c * partStride }
        func scores(_ c: Int) -> UnsafeMutablePointer<Float> { scores + c * rows * perClass }
        /// Class c's keys below `limit` local rows.
        func keys(_ c: Int, below limit: Int) -> Int { limit > c ? (limit - c + held - 1) / held : 0 }
    }

    /// Every held class's partial for the block, two passes over the tiles (a quantized cache's
    /// tile is dequantized once per pass): the scores of every class, then — after each row's
    /// softmax statistics — o = P · latent, one chain per element continued tile after tile.
    private func classPartials(_ b: ClassBlock, keys: CachedRows, tiles: [Range<Int>]) {
        let rw = recordWidth, held = b.held
        var started = [Bool](repeating: false, count: held)             // o's chain begun (from +0) by a first product
        defer {
            for c in 0..<held where !started[c] {                           // a class with no key below reach: o = 0
                for r in 0..<b.rows { (b.part(c) + r * rw).update(repeating: 0, count: lora) }
            }
        }
        for c in 0..<held {
            let part = b.part(c)
            for r in 0..<b.rows { part[r * rw + lora] = -.infinity; part[r * rw + lora + 1] = 0 }
        }
        guard b.reach > 0 else { return }
        var first = [Int](repeating: 0, count: held)                    // class index of the tile's first key, per class
        for t in tiles where t.lowerBound < b.reach {                   // a tile starts at a multiple of `held`
            let tile = keys.tile(t)
            for c in 0..<held {
                let n = b.keys(c, below: min(t.upperBound, b.reach) - t.lowerBound)
                guard n > 0 else { continue }
                FixedOrderGemm.nt(m: b.rows, n: n, k: width, a: b.qs, lda: width, b: .f32(tile + c * keys.width), ldb: held * keys.width,
                                  c: b.scores(c) + first[c], ldc: b.perClass, isa: FixedOrderGemm.isa)
                first[c] += n
            }
        }
        for c in 0..<held {
            let s = b.scores(c), part = b.part(c), count = b.keys(c, below: b.reach)
            for r in 0..<b.rows {
                let row = s + r * b.perClass, v = b.keys(c, below: b.seen[r])
                var m = -Float.infinity
                for j in 0..<v { row[j] *= scale; m = max(m, row[j]) }
                var l: Float = 0
                for j in 0..<v { row[j] = FastExp.exp(row[j] - m); l += row[j] }
                for j in v..<count { row[j] = 0 }
                part[r * rw + lora] = v > 0 ? m : -.infinity
                part[r * rw + lora + 1] = l
            }
        }
        first = [Int](repeating: 0, count: held)
        for t in tiles where t.lowerBound < b.reach {
            let tile = keys.tile(t)
            for c in 0..<held {
                let n = b.keys(c, below: min(t.upperBound, b.reach) - t.lowerBound)
                guard n > 0 else { continue }
                FixedOrderGemm.nn(m: b.rows, n: lora, k: n, a: b.scores(c) + first[c], lda: b.perClass, b: .f32(tile + c * keys.width),
                                  ldb: held * keys.width, c: b.part(c), ldc: rw, accumulate: started[c], isa: FixedOrderGemm.isa)
                started[c] = true
                first[c] += n
            }
        }
    }

    /// `a = merge(a, b)` for `count` records `[o | m | l]`: m = max(m_a, m_b), each side scaled
    /// by e^(m_side − m); symmetric, so merge(a, b) and merge(b, a) have the same bits.
    static func merge(_ a: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>, count: Int, lora: Int) {
        let rw = lora + 2
        for r in 0..<count {
            let x = a + r * rw, y = b + r * rw
            let ma = x[lora], mb = y[lora], m = max(ma, mb)
            guard m > -.infinity else { continue }                                  // neither side saw a key
            let fa = ma == -.infinity ? 0 : FastExp.exp(ma - m), fb = mb == -.infinity ? 0 : FastExp.exp(mb - m)
            var i = 0
            let va = SIMD8<Float>(repeating: fa), vb = SIMD8<Float>(repeating: fb)
            while i + 8 <= lora {                                               // lane by lane the same operations as the tail
                let xv = SIMD8<Float>(UnsafeBufferPointer(start: x + i, count: 8)), yv = SIMD8<Float>(UnsafeBufferPointer(start: y + i, count: 8))
                let v = xv * va + yv * vb
                for l in 0..<8 { x[i + l] = v[l] }
                i += 8
            }
            while i < lora { x[i] = x[i] * fa + y[i] * fb; i += 1 }
            x[lora] = m
            x[lora + 1] = x[lora + 1] * fa + y[lora + 1] * fb
        }
    }

    /// `ol = o / l` for `rows` records, stored in `precision`: the attention over the latent.
    func finish(_ records: UnsafePointer<Float>, rows: Int, into ol: UnsafeMutablePointer<Float>) {
        let rw = recordWidth
        for r in 0..<rows {
            let rec = records + r * rw, l = rec[lora + 1]
            for i in 0..<lora { ol[r * lora + i] = rec[i] / l }
        }
        Kernels.round(ol, rows: rows, cols: lora, ld: lora, to: precision)
    }

    /// `O_h = ol_h · W_UV_hᵀ` `[nq, v]` into head h's columns of `out` (NT kernel), for each head of
    /// `heads` (row blocks of `ol`, head-major).
    func expand(_ ol: UnsafePointer<Float>, kvB: GemmSource, heads: Range<Int>, nq: Int, out: UnsafeMutablePointer<Float>, ldo: Int) {
        let headRows = nope + vDim
        for (j, h) in heads.enumerated() {
            FixedOrderGemm.nt(m: nq, n: vDim, k: lora, a: ol + j * nq * lora, lda: lora, b: kvB.advanced(by: h * headRows * lora + nope * lora),
                              ldb: lora, c: out + h * vDim, ldc: ldo, isa: FixedOrderGemm.isa)
        }
    }
}
