import TensorCore

/// MLA's compressed KV cache: per sequence, the normalized latent `[len, kv_lora]` and the
/// roped, head-shared `k_rope [len, rope]`, stored together as rows `[len, kv_lora + rope]`
/// (the same layout as `kv_a_proj_with_mqa`'s output).
///
/// Partition: under tensor parallelism, replicated — every rank of a TP group holds the whole
/// cache of its sequences, as in vLLM and SGLang. The latent feeds every head, and each rank
/// expands or absorbs it with its own heads' slice of kv_b_proj, so no rank needs another's data
/// and the cache costs no communication. The price is tp copies of it. Two layouts avoid that:
/// data-parallel attention gives each group only its own sequences (the cache is built per
/// group), and decode context parallelism (`share`) keeps on DCP index k of C only the tokens
/// with cache index i mod C = k, row j holding token k + j·C.
public final class KVCache {
    /// Floats per cached token: kv_lora + rope.
    public let width: Int
    /// Which tokens this rank keeps: cache index i with i mod `share.count` = `share.index`.
    public let share: (index: Int, count: Int)
    /// Cached rows per slot, `[capacity, width]` each, of which the first `localLengths[s]` are filled.
    var slots: [Matrix]
    /// Tokens of each slot's sequence so far (on every rank, whichever keeps them).
    public private(set) var lengths: [Int]
    /// Rows this rank keeps per slot.
    public private(set) var localLengths: [Int]

    /// An empty cache of `sequences` slots for `config`; with `share` (DCP) this rank keeps only
    /// its share of each sequence's tokens.
    public init(config: MLAConfig, sequences: Int, share: (index: Int, count: Int) = (0, 1)) {
        precondition(share.count >= 1 && (0..<share.count).contains(share.index), "cache share \(share) is not valid")
        width = config.kvLoraRank + config.qkRopeHeadDim
        self.share = share
        slots = Array(repeating: Matrix(rows: 0, cols: width), count: sequences)
        lengths = Array(repeating: 0, count: sequences)
        localLengths = lengths
    }

    /// Rows this rank keeps of the first `tokens` tokens of a sequence: the cache indices
    /// `i < tokens` with i mod C = index (for a query at cache index p, the keys it may see
    /// here are the first `localCount(p + 1)` rows).
    public func localCount(_ tokens: Int) -> Int {
        tokens <= share.index ? 0 : (tokens - share.index + share.count - 1) / share.count
    }

    /// Bytes per cached token (f32): `(kv_lora + rope) · 4`, on every rank.
    public static func bytesPerToken(config: MLAConfig) -> Int { 4 * (config.kvLoraRank + config.qkRopeHeadDim) }

    /// Bytes of the tokens this rank holds now.
    public var bytes: Int { 4 * width * localLengths.reduce(0, +) }

    public var sequenceCount: Int { slots.count }

    /// Appends the tokens of `rows` of `source` (`[·, width]`) that this rank keeps to slot `s`,
    /// growing its storage geometrically.
    func append(slot s: Int, from source: Matrix, rows: Range<Int>) {
        let first = lengths[s]                                      // cache index of rows.lowerBound
        let kept = rows.filter { (first + $0 - rows.lowerBound) % share.count == share.index }
        let needed = localLengths[s] + kept.count
        if slots[s].rows < needed {
            var grown = Matrix(rows: max(needed, 2 * slots[s].rows, 16), cols: width)
            grown.storage.replaceSubrange(0 ..< localLengths[s] * width, with: slots[s].storage[0 ..< localLengths[s] * width])
            slots[s] = grown
        }
        var dst = localLengths[s] * width
        if share.count == 1 {                                       // every token: one block copy
            slots[s].storage.replaceSubrange(dst ..< dst + rows.count * width,
                                             with: source.storage[rows.lowerBound * width ..< rows.upperBound * width])
        } else {
            for r in kept {
                slots[s].storage.replaceSubrange(dst ..< dst + width, with: source.storage[r * width ..< (r + 1) * width])
                dst += width
            }
        }
        lengths[s] = first + rows.count
        localLengths[s] = needed
    }

    /// Runs `body` with a pointer to slot `s`'s first cached row.
    func withRows<R>(slot s: Int, _ body: (UnsafePointer<Float>) throws -> R) rethrows -> R {
        // A slot that holds no row yet (a DCP rank's empty share) still passes a valid pointer; nothing reads it.
        try slots[s].storage.withUnsafeBufferPointer { rows in
            if let base = rows.baseAddress { return try body(base) }
            return try [Float](repeating: 0, count: width).withUnsafeBufferPointer { try body($0.baseAddress!) }
        }
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
