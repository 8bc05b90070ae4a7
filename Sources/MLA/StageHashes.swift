import TensorCore

/// The stages a forward hashes per sequence, in forward order (`StageHashes`); `output` is the
/// layer's output as the job hands it back, after the data-parallel gather.
public enum HashedStage: String, Codable, Sendable, CaseIterable, Comparable {
    /// q after q_b (or q_proj), before RoPE: per head its nope+rope columns (and a packed gate's).
    case q
    /// The normalized latent and k_rope `[T, kv_lora+rope]` from kv_a, before RoPE: whole on every rank.
    case kv
    /// The attention output `[T, H/tp·v]` as stored, before the gate: per head its v columns.
    case attention
    /// `attn ⊙ act(gate)`, o_proj's input: per head its v columns.
    case gate
    /// o_proj after the reduction and the bias: `[T, hidden]`, whole on every rank.
    case oProj = "o_proj"
    /// The layer's output as rank 0 holds it for the whole batch.
    case output

    public static func < (a: HashedStage, b: HashedStage) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }
}

/// A 64-bit FNV-1a hash over 32-bit words: the bit patterns of floats, fed in order. Feeding
/// rows one call at a time or all at once gives the same hash, so a sequence hashed as it
/// arrives (in one prefill, in chunks, a token per decode step) hashes as its whole rows.
public struct BitHash: Codable, Sendable, Hashable, CustomStringConvertible {
    public private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    public init() {}

    @inline(__always)
    public mutating func feed(_ word: UInt32) {
        value = (value ^ UInt64(word)) &* 0x0000_0100_0000_01b3
    }

    public mutating func feed(_ p: UnsafePointer<Float>, count: Int) {
        for i in 0..<count { feed(p[i].bitPattern) }
    }

    /// Mixes another hash in (both halves), for combining per-head hashes in head order.
    public mutating func feed(_ other: BitHash) {
        feed(UInt32(truncatingIfNeeded: other.value))
        feed(UInt32(truncatingIfNeeded: other.value >> 32))
    }

    /// Sixteen hex digits.
    public var description: String {
        let s = String(value, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }

    public init(from decoder: Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard text.count == 16, let v = UInt64(text, radix: 16) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "a hash is 16 hex digits, got \(text)"))
        }
        value = v
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}

/// Per sequence and per stage, a hash of the rows each stage of this rank's forwards wrote, so
/// that two layouts (or two ways of batching or chunking the same sequences) can be compared
/// stage by stage. A stage split by heads is hashed per head (global head index), so the hashes
/// of a TP group, combined in head order (`combine`), do not depend on how many ranks held the
/// heads; a stage every rank holds whole is hashed whole. Rows are fed in token order as they
/// arrive, across every step of a serving pass. Off unless a forward is given one
/// (`MLAAttention.stageHashes`): nothing is computed then.
public final class StageHashes {
    /// One hash: sequence `sequence`'s rows of `stage`, over head `head`'s columns (nil: whole rows).
    public struct Entry: Codable, Sendable, Equatable {
        public var sequence: Int
        public var stage: HashedStage
        public var head: Int?
        public var hash: BitHash
    }
    struct Key: Hashable { var sequence: Int, stage: HashedStage, head: Int? }

    /// The identity of each sequence of the batch this rank runs (its index in the batch, or its
    /// cache slot, → the sequence's id).
    public let sequenceIDs: [Int]
    var hashes: [Key: BitHash] = [:]
    /// The current forward's sequences: (index in the batch, rows of the forward's input).
    var rows: [(sequence: Int, rows: Range<Int>)] = []

    public init(sequenceIDs: [Int]) { self.sequenceIDs = sequenceIDs }

    /// A plain forward of `batch`: sequence b is its rows `batch.tokens(of: b)`.
    func begin(_ batch: Batch) { rows = (0..<batch.sequenceCount).map { ($0, batch.tokens(of: $0)) } }

    /// A serving step: slot `step.slots[i]`'s new tokens are the next `step.newTokens[i]` rows.
    func begin(_ step: ServingStep) {
        var row = 0
        rows = zip(step.slots, step.newTokens).map { slot, n in
            defer { row += n }
            return (slot, row ..< row + n)
        }
    }

    /// Feeds each sequence's rows of `m`: whole rows (`columns` nil), or for each of `heads`
    /// heads (global index `firstHead + h`) the `width` columns at `h · stride`.
    func record(_ stage: HashedStage, _ m: Matrix, firstHead: Int = 0, heads: Int = 0, width: Int = 0, stride: Int = 0) {
        let ld = m.cols
        m.storage.withUnsafeBufferPointer { s in
            for (b, range) in rows where !range.isEmpty {
                let id = sequenceIDs[b]
                if heads == 0 {
                    let key = Key(sequence: id, stage: stage, head: nil)
                    var h = hashes[key] ?? BitHash()
                    for t in range { h.feed(s.baseAddress! + t * ld, count: ld) }
                    hashes[key] = h
                    continue
                }
                for head in 0..<heads {
                    let key = Key(sequence: id, stage: stage, head: firstHead + head)
                    var h = hashes[key] ?? BitHash()
                    for t in range { h.feed(s.baseAddress! + t * ld + head * stride, count: width) }
                    hashes[key] = h
                }
            }
        }
    }

    /// Every hash so far, ordered by sequence, stage and head.
    public var entries: [Entry] {
        hashes.map { Entry(sequence: $0.key.sequence, stage: $0.key.stage, head: $0.key.head, hash: $0.value) }
            .sorted { ($0.sequence, $0.stage, $0.head ?? -1) < ($1.sequence, $1.stage, $1.head ?? -1) }
    }

    /// One hash per (sequence, stage) from the entries of every rank (in rank order): a stage
    /// held per head is the hash of its heads' hashes in head order, the same whatever split
    /// them; a whole stage is the first rank's.
    public static func combine(_ ranks: [[Entry]]) -> [Int: [HashedStage: BitHash]] {
        var whole: [Int: [HashedStage: BitHash]] = [:], perHead: [Int: [HashedStage: [Int: BitHash]]] = [:]
        for entries in ranks {
            for e in entries {
                if let head = e.head {
                    perHead[e.sequence, default: [:]][e.stage, default: [:]][head] = e.hash
                } else if whole[e.sequence]?[e.stage] == nil {
                    whole[e.sequence, default: [:]][e.stage] = e.hash
                }
            }
        }
        for (sequence, stages) in perHead {
            for (stage, heads) in stages {
                var h = BitHash()
                for head in heads.keys.sorted() { h.feed(heads[head]!) }
                whole[sequence, default: [:]][stage] = h
            }
        }
        return whole
    }
}
