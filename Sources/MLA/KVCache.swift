import TensorCore
import TensorParallel

/// MLA's compressed KV cache: per sequence, the normalized latent `[len, kv_lora]` and the
/// roped, head-shared `k_rope [len, rope]` of every token, one token after another in the
/// layout of `dtype` (`KVCacheLayout`: f32, bf16, or FlashMLA's 656-byte fp8 token at
/// deepseek-v3 scale). A token is rounded or quantized once, when it is appended; readers get
/// f32 rows back a tile of `tileTokens` tokens at a time (`rows(slot:)`), dequantized into a
/// scratch of one tile right before their GEMMs, never the whole cache.
///
/// Partition: under tensor parallelism, replicated — every rank of a TP group holds the whole
/// cache of its sequences, as in vLLM and SGLang. The latent feeds every head, and each rank
/// expands or absorbs it with its own heads' slice of kv_b_proj, so no rank needs another's data
/// and the cache costs no communication. The price is tp copies of it. Two layouts avoid that:
/// data-parallel attention gives each group only its own sequences (the cache is built per
/// group), and decode context parallelism (`share`, a `TokenShare`) keeps on DCP index k of C
/// only the tokens with cache index i mod C = k, row j holding token k + j·C.
public final class KVCache {
    /// Values per cached token: kv_lora + rope.
    public let width: Int
    /// How each token is held.
    public let layout: KVCacheLayout
    /// Which tokens this rank keeps: cache index i with i mod `share.count` = `share.index`.
    public let share: TokenShare
    /// Each slot's tokens, `layout.bytesPerToken` apiece, of which the first `localLengths[s]` are filled.
    private var slots: [TokenBuffer]
    /// Tokens of each slot's sequence so far (on every rank, whichever keeps them).
    public private(set) var lengths: [Int]
    /// Tokens this rank keeps per slot.
    public private(set) var localLengths: [Int]
    /// One tile of rows read back as f32, `[tileTokens, width]`, and one tile of tokens as held
    /// (`asCached`'s); both empty for an f32 cache.
    private let tile: UnsafeMutablePointer<Float>
    private let staging: TokenBuffer

    /// Tokens a reader gets at a time: the bound of the dequantization scratch (295 KB of f32 at
    /// deepseek-v3's 576 values a token), and the token blocks of every GEMM over cached rows.
    public static let tileTokens = 128

    /// An empty cache of `sequences` slots for `config`, each token held as `dtype`; with `share`
    /// (DCP) this rank keeps only its share of each sequence's tokens.
    public init(config: MLAConfig, sequences: Int, share: TokenShare = .whole, dtype: KVCacheDType = .f32) {
        let layout = KVCacheLayout(config: config, dtype: dtype)
        self.layout = layout
        width = layout.width
        self.share = share
        slots = (0..<sequences).map { _ in TokenBuffer(layout: layout) }
        lengths = Array(repeating: 0, count: sequences)
        localLengths = lengths
        tile = .allocate(capacity: dtype == .f32 ? 0 : Self.tileTokens * layout.width)
        staging = TokenBuffer(layout: layout)
        if dtype != .f32 { staging.reserve(Self.tileTokens) }
    }

    deinit { tile.deallocate() }

    public var dtype: KVCacheDType { layout.dtype }

    /// Bytes per cached token as `dtype` holds it, on every rank that keeps it: deepseek-v3
    /// 2,304 (f32), 1,152 (bf16), 656 (fp8).
    public static func bytesPerToken(config: MLAConfig, dtype: KVCacheDType) -> Int {
        KVCacheLayout(config: config, dtype: dtype).bytesPerToken
    }

    /// Bytes of the tokens this rank holds now.
    public var bytes: Int { layout.bytesPerToken * localLengths.reduce(0, +) }

    public var sequenceCount: Int { slots.count }

    /// Appends the tokens of `rows` of `source` (`[·, width]`, f32 values) that this rank keeps
    /// to slot `s`, each stored as `dtype` (rounded or quantized here, once).
    func append(slot s: Int, from source: Matrix, rows: Range<Int>) {
        let first = lengths[s]                                      // cache index of rows.lowerBound
        let kept = rows.filter { share.holds(first + $0 - rows.lowerBound) }
        let buffer = slots[s]
        buffer.reserve(localLengths[s] + kept.count)
        source.storage.withUnsafeBufferPointer { src in
            if share.count == 1 {                                   // every token: one pass over contiguous rows
                buffer.encode(src.baseAddress! + rows.lowerBound * width, tokens: rows.count, at: localLengths[s])
            } else {
                for (j, r) in kept.enumerated() { buffer.encode(src.baseAddress! + r * width, tokens: 1, at: localLengths[s] + j) }
            }
        }
        lengths[s] = first + rows.count
        localLengths[s] += kept.count
    }

    /// The rows this rank keeps of slot `s` (`localLengths[s]` of them), as readers take them:
    /// f32, a tile at a time. Valid until the next `append` or `rows` call.
    func rows(slot s: Int) -> CachedRows {
        let buffer = slots[s], count = localLengths[s], layout = layout, tile = tile, width = width
        if layout.dtype == .f32 {
            let base = buffer.storage.assumingMemoryBound(to: Float.self)
            return CachedRows(rows: base, count: count, width: width)
        }
        return CachedRows(count: count, width: width) { range in
            precondition(range.count <= Self.tileTokens, "a tile of \(range.count) cached tokens, past the scratch's \(Self.tileTokens)")
            layout.decode(buffer.storage + range.lowerBound * layout.bytesPerToken, count: range.count, into: tile)
            return UnsafePointer(tile)
        }
    }

    /// `source`'s rows `[count, width]` as this cache would hold and return them: each tile
    /// stored as `dtype` and read back (for a f32 cache, the rows themselves). Attention over a
    /// step's own new tokens reads them so, exactly as it reads the tokens of earlier steps.
    func asCached(_ source: UnsafePointer<Float>, count: Int) -> CachedRows {
        guard layout.dtype != .f32 else { return CachedRows(rows: source, count: count, width: width) }
        let staging = staging, tile = tile, width = width, layout = layout
        return CachedRows(count: count, width: width) { range in
            staging.encode(source + range.lowerBound * width, tokens: range.count, at: 0)
            layout.decode(staging.storage, count: range.count, into: tile)
            return UnsafePointer(tile)
        }
    }
}

/// Cached rows `[count, kv_lora + rope]` as the attention kernels read them: f32 rows (row stride
/// `width`) of at most `KVCache.tileTokens` tokens at a time. Every reader takes the same tiles
/// whatever the cache holds, so a cache whose tokens read back exactly (f32; bf16 holding bf16
/// activations) gives the same GEMMs on the same values, bit for bit.
struct CachedRows {
    let count: Int
    let width: Int
    /// Rows `range` (one of `tiles`), valid until the next call.
    let tile: (Range<Int>) -> UnsafePointer<Float>

    /// Every row in place, when the rows are f32 in memory (nil: they come a tile at a time).
    let whole: UnsafePointer<Float>?

    /// f32 rows at `rows`, read in place.
    init(rows: UnsafePointer<Float>, count: Int, width: Int) {
        self.init(count: count, width: width, whole: rows) { rows + $0.lowerBound * width }
    }

    init(count: Int, width: Int, whole: UnsafePointer<Float>? = nil, tile: @escaping (Range<Int>) -> UnsafePointer<Float>) {
        (self.count, self.width, self.whole, self.tile) = (count, width, whole, tile)
    }

    /// The token ranges a reader walks: `KVCache.tileTokens` at a time.
    var tiles: [Range<Int>] {
        stride(from: 0, to: count, by: KVCache.tileTokens).map { $0 ..< min($0 + KVCache.tileTokens, count) }
    }
}

/// One slot's tokens in a `KVCacheLayout`, grown geometrically (64-byte aligned, bound to the
/// layout's element type).
final class TokenBuffer {
    let layout: KVCacheLayout
    private(set) var storage: UnsafeMutableRawPointer
    private(set) var capacity = 0

    init(layout: KVCacheLayout) {
        self.layout = layout
        storage = .allocate(byteCount: 0, alignment: 64)
    }

    deinit { storage.deallocate() }

    /// Room for at least `tokens` tokens, keeping those held.
    func reserve(_ tokens: Int) {
        guard tokens > capacity else { return }
        let grown = max(tokens, 2 * capacity, 16), bytes = layout.bytesPerToken
        let fresh = UnsafeMutableRawPointer.allocate(byteCount: grown * bytes, alignment: 64)
        switch layout.dtype {
        case .f32: fresh.bindMemory(to: Float.self, capacity: grown * layout.width)
        case .bf16: fresh.bindMemory(to: BFloat16.self, capacity: grown * layout.width)
        case .fp8: fresh.bindMemory(to: UInt8.self, capacity: grown * bytes)
        }
        fresh.copyMemory(from: storage, byteCount: capacity * bytes)
        storage.deallocate()
        (storage, capacity) = (fresh, grown)
    }

    /// Stores `tokens` f32 rows from `source` as tokens `at ..< at + tokens` (within capacity).
    func encode(_ source: UnsafePointer<Float>, tokens: Int, at: Int) {
        precondition(at + tokens <= capacity, "tokens \(at)..<\(at + tokens) past a slot's \(capacity)")
        layout.encode(source, count: tokens, into: storage + at * layout.bytesPerToken)
    }
}

/// One step of serving: which cache slot each sequence uses and how many new tokens it brings.
/// A sequence with one new token decodes; one with more prefills (after a cached prefix, if
/// any: chunked prefill). The step's tokens are laid end to end in that order.
public struct ServingStep: Equatable, Sendable {
    public var slots: [Int]
    public var newTokens: [Int]

    public init(slots: [Int], newTokens: [Int]) throws {
        guard slots.count == newTokens.count else {
            throw BatchError.badCuSeqlens("a serving step needs one new-token count per slot (\(slots.count) slots, \(newTokens.count) counts)")
        }
        if let bad = newTokens.first(where: { $0 < 0 }) { throw BatchError.negativeLength(bad) }
        if Set(slots).count != slots.count { throw BatchError.badCuSeqlens("a slot appears twice in one step: \(slots)") }
        self.slots = slots
        self.newTokens = newTokens
    }

    /// A step built by `ServingSchedule`, whose slots are distinct and counts non-negative by construction.
    init(validSlots slots: [Int], newTokens: [Int]) {
        self.slots = slots
        self.newTokens = newTokens
    }

    public var tokenCount: Int { newTokens.reduce(0, +) }
}

/// How a decoding sequence (one new token) attends over its cache (`--decode`).
public enum DecodePath: String, CaseIterable, Sendable, Codable {
    /// Expand every cached latent into per-head k_nope and v through kv_b_proj, then attend.
    case naive
    /// Fold W_UK into the query and apply W_UV after attending over the latent
    /// (DeepSeek-V3's inference code, vLLM's MLA backend): nothing is expanded.
    case absorbed
}
