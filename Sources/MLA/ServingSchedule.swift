import TensorCore
import TensorParallel

/// How a batch is served step by step (`--decode-steps D`, `--prefill-chunk C`): each sequence
/// prefills its first `len − D` tokens, `C` at a time (all at once when C is nil), then decodes
/// its last D tokens one per step. In each step every unfinished sequence advances, so a step
/// mixes prefilling and decoding sequences whenever their phases differ. A sequence shorter than
/// D prefills nothing and decodes all its tokens; `shorterThanDecodeSteps` lists them, so the
/// report says what was done.
public struct ServingSchedule: Sendable {
    public struct Step: Sendable {
        public var step: ServingStep
        /// The rows of the whole batch this step processes, sequence by sequence.
        public var rows: [Range<Int>]
    }

    public let steps: [Step]
    /// Tokens each sequence decodes one at a time at its end.
    public let decodeSteps: Int
    /// Most tokens a sequence prefills per step (nil: all at once).
    public let prefillChunk: Int?
    /// Tokens prefilled (in chunks or at once) and tokens decoded one at a time, over the batch.
    public let prefillTokens: Int, decodeTokens: Int
    /// Indices of the sequences shorter than `decodeSteps` (they decode all their tokens).
    public let shorterThanDecodeSteps: [Int]

    public init(batch: Batch, decodeSteps: Int, prefillChunk: Int? = nil) throws(ServingScheduleError) {
        guard decodeSteps >= 0 else { throw .negativeDecodeSteps(decodeSteps) }
        if let c = prefillChunk, c < 1 { throw .nonPositivePrefillChunk(c) }
        let B = batch.sequenceCount
        let lengths = (0..<B).map { batch.tokens(of: $0).count }
        shorterThanDecodeSteps = lengths.indices.filter { lengths[$0] < decodeSteps }
        decodeTokens = lengths.reduce(0) { $0 + min($1, decodeSteps) }
        prefillTokens = batch.tokenCount - decodeTokens
        var done = [Int](repeating: 0, count: B)
        var steps: [Step] = []
        while true {
            var slots: [Int] = [], counts: [Int] = [], rows: [Range<Int>] = []
            for b in 0..<B {
                let seq = batch.tokens(of: b), len = seq.count
                guard done[b] < len else { continue }
                let prefillEnd = max(len - decodeSteps, 0)
                let n = done[b] < prefillEnd ? min(prefillChunk ?? Int.max, prefillEnd - done[b]) : 1
                slots.append(b)
                counts.append(n)
                rows.append(seq.lowerBound + done[b] ..< seq.lowerBound + done[b] + n)
                done[b] += n
            }
            if slots.isEmpty { break }
            steps.append(Step(step: ServingStep(validSlots: slots, newTokens: counts), rows: rows))
        }
        self.steps = steps
        self.decodeSteps = decodeSteps
        self.prefillChunk = prefillChunk
    }
}

/// Serving flags that cannot describe a schedule: usage errors about those flags.
public enum ServingScheduleError: Error, Equatable, CustomStringConvertible {
    case negativeDecodeSteps(Int)
    case nonPositivePrefillChunk(Int)

    public var description: String {
        switch self {
        case let .negativeDecodeSteps(d):
            return "--decode-steps \(d) must be ≥ 0 — the last D tokens of each sequence are decoded one at a time (0: a plain forward)"
        case let .nonPositivePrefillChunk(c):
            return "--prefill-chunk \(c) must be ≥ 1 — the most tokens a sequence prefills per step"
        }
    }
}

extension MLAAttention {
    /// Serves the whole batch through a fresh latent cache following `schedule`, and returns
    /// the outputs in the batch's token order, `[T, hidden]` — equal to the full causal forward.
    /// `collectives` is the TP group's; under decode context parallelism `dcp` is the DCP group's,
    /// and the cache keeps its token share. The cache holds its tokens as `cacheDType` (nil: the
    /// activations' precision, `KVCacheDType(activations:)`). An empty batch still runs one
    /// (empty) step, so every rank enters the same collective.
    public func serve(_ x: Matrix, batch: Batch, schedule: ServingSchedule, decode: DecodePath,
                      collectives: Collectives, dcp: ContextParallelGroup? = nil, cacheDType: KVCacheDType? = nil) throws -> Matrix {
        let cache = KVCache(config: config, sequences: batch.sequenceCount, share: dcp?.share ?? .whole,
                            dtype: cacheDType ?? KVCacheDType(activations: precision))
        lastCache = cache
        var out = Matrix(rows: x.rows, cols: config.hiddenSize)
        guard !schedule.steps.isEmpty else {
            return try forward(x, step: try ServingStep(slots: [], newTokens: []), cache: cache, decode: decode,
                               positions: [], collectives: collectives, dcp: dcp)
        }
        var total = ForwardCounters()
        for s in schedule.steps {
            let picked = s.rows.flatMap { Array($0) }
            var xs = Matrix(rows: picked.count, cols: x.cols)                     // [n_step, hidden]
            for (i, r) in picked.enumerated() {
                xs.storage.replaceSubrange(i * x.cols ..< (i + 1) * x.cols, with: x.storage[r * x.cols ..< (r + 1) * x.cols])
            }
            let y = try forward(xs, step: s.step, cache: cache, decode: decode,
                                positions: picked.map { batch.positions[$0] }, collectives: collectives, dcp: dcp)
            for (i, r) in picked.enumerated() {
                out.storage.replaceSubrange(r * out.cols ..< (r + 1) * out.cols, with: y.storage[i * out.cols ..< (i + 1) * out.cols])
            }
            total.add(counters)
        }
        counters = total
        return out
    }
}
