import TensorCore

/// MLA's compressed KV cache: per sequence, the normalized latent `[len, kv_lora]` and the
/// roped, head-shared `k_rope [len, rope]`, stored together as rows `[len, kv_lora + rope]`
/// (the same layout as `kv_a_proj_with_mqa`'s output).
///
/// Partition: replicated — every rank holds the whole cache, as in vLLM and SGLang. The
/// latent feeds every head, and each rank expands or absorbs it with its own heads' slice of
/// kv_b_proj, so no rank needs another's data and the cache costs no communication. The price
/// is tp copies of it; SGLang's DP-attention avoids that by sharding sequences instead of heads.
public final class KVCache {
    /// Floats per cached token: kv_lora + rope.
    public let width: Int
    /// Cached rows per slot, `[capacity, width]` each, of which the first `lengths[s]` are filled.
    var slots: [Matrix]
    /// Tokens cached per slot.
    public private(set) var lengths: [Int]

    /// An empty cache of `sequences` slots for `config`.
    public init(config: MLAConfig, sequences: Int) {
        width = config.kvLoraRank + config.qkRopeHeadDim
        slots = Array(repeating: Matrix(rows: 0, cols: width), count: sequences)
        lengths = Array(repeating: 0, count: sequences)
    }

    /// Bytes per cached token (f32): `(kv_lora + rope) · 4`, on every rank.
    public static func bytesPerToken(config: MLAConfig) -> Int { 4 * (config.kvLoraRank + config.qkRopeHeadDim) }

    /// Bytes of the tokens cached now.
    public var bytes: Int { 4 * width * lengths.reduce(0, +) }

    public var sequenceCount: Int { slots.count }

    /// Appends `rows` of `source` (`[·, width]`) to slot `s`, growing its storage geometrically.
    func append(slot s: Int, from source: Matrix, rows: Range<Int>) {
        let needed = lengths[s] + rows.count
        if slots[s].rows < needed {
            var grown = Matrix(rows: max(needed, 2 * slots[s].rows, 16), cols: width)
            grown.storage.replaceSubrange(0 ..< lengths[s] * width, with: slots[s].storage[0 ..< lengths[s] * width])
            slots[s] = grown
        }
        let dst = lengths[s] * width
        slots[s].storage.replaceSubrange(dst ..< dst + rows.count * width,
                                         with: source.storage[rows.lowerBound * width ..< rows.upperBound * width])
        lengths[s] = needed
    }

    /// Runs `body` with a pointer to slot `s`'s first cached row.
    func withRows<R>(slot s: Int, _ body: (UnsafePointer<Float>) throws -> R) rethrows -> R {
        try slots[s].storage.withUnsafeBufferPointer { try body($0.baseAddress!) }
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
