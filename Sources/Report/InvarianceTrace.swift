import MLA

/// How the sequences of an invariance run are put into batches (`--batches`).
public enum BatchArrangement: String, Codable, Sendable, CaseIterable {
    /// One batch, the sequences in id order.
    case together
    /// One batch per sequence: each sequence by itself.
    case alone
    /// One batch, the sequences in reverse order: each at another position, beside other neighbours.
    case reversed

    /// The batches of `n` sequences, each a list of sequence ids in batch order.
    public func batches(sequences n: Int) -> [[Int]] {
        switch self {
        case .together: return [Array(0..<n)]
        case .alone: return (0..<n).map { [$0] }
        case .reversed: return [Array((0..<n).reversed())]
        }
    }
}

/// How each sequence's tokens reach the layer (`--chunks`).
public enum Chunking: Codable, Sendable, Hashable, CustomStringConvertible {
    /// One plain forward over every token, no cache (under a -dcp layout: one prefill through
    /// the cache, as `run` serves it there).
    case forward
    /// Through the latent cache, each sequence's tokens in one prefill step.
    case prefill
    /// Through the latent cache, at most C tokens of a sequence per step (chunked prefill).
    case chunk(Int)
    /// Through the latent cache, one token per step: every token decoded.
    case decode

    /// The forms `--chunks` accepts.
    public static let forms = "forward, prefill, chunkC (C ≥ 1 tokens per step, e.g. chunk2) or decode"

    /// `forward`, `prefill`, `chunkC` (C ≥ 1) or `decode`; nil for anything else.
    public init?(name: String) {
        switch name {
        case "forward": self = .forward
        case "prefill": self = .prefill
        case "decode": self = .decode
        default:
            guard name.hasPrefix("chunk"), let c = Int(name.dropFirst(5)), c >= 1, name.dropFirst(5).allSatisfy(\.isNumber) else { return nil }
            self = .chunk(c)
        }
    }

    public var description: String {
        switch self {
        case .forward: return "forward"
        case .prefill: return "prefill"
        case let .chunk(c): return "chunk\(c)"
        case .decode: return "decode"
        }
    }

    /// `--decode-steps` and `--prefill-chunk` of this chunking for sequences of at most `longest`
    /// tokens (nil: a plain forward).
    public func serving(longest: Int) -> (decodeSteps: Int, prefillChunk: Int?)? {
        switch self {
        case .forward: return nil
        case .prefill: return (0, nil)
        case let .chunk(c): return (0, c)
        case .decode: return (longest, nil)
        }
    }

    public init(from decoder: Decoder) throws {
        let name = try decoder.singleValueContainer().decode(String.self)
        guard let c = Chunking(name: name) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "expected \(Chunking.forms), got \(name)"))
        }
        self = c
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}

/// One way of running every sequence of an invariance run: how they are batched and how their tokens arrive.
public struct InvariancePass: Codable, Sendable, Hashable {
    public var arrangement: BatchArrangement
    public var chunking: Chunking
    public init(arrangement: BatchArrangement, chunking: Chunking) {
        self.arrangement = arrangement
        self.chunking = chunking
    }
}

/// What one layout's invariance job hands back: for each pass (a batch arrangement and a
/// chunking), each sequence's per-stage hashes and its output's bits, by sequence id.
public struct InvarianceTrace: Codable, Sendable, Equatable {
    public struct StageHash: Codable, Sendable, Equatable {
        public var stage: HashedStage
        public var hash: BitHash
        public init(stage: HashedStage, hash: BitHash) {
            self.stage = stage
            self.hash = hash
        }
    }
    public struct Sequence: Codable, Sendable, Equatable {
        public var id: Int
        public var tokens: Int
        /// In stage order; a stage the model does not run (an ungated layer's gate) is absent.
        public var stages: [StageHash]
        /// The output rows `[tokens, hidden]` as f32 bit patterns.
        public var output: [UInt32]
        public init(id: Int, tokens: Int, stages: [StageHash], output: [UInt32]) {
            self.id = id
            self.tokens = tokens
            self.stages = stages
            self.output = output
        }
        public func hash(of stage: HashedStage) -> BitHash? { stages.first { $0.stage == stage }?.hash }
    }
    /// One pass's sequences, in id order.
    public struct PassResult: Codable, Sendable, Equatable {
        public var pass: InvariancePass
        public var sequences: [Sequence]
        public init(pass: InvariancePass, sequences: [Sequence]) {
            self.pass = pass
            self.sequences = sequences
        }
    }

    public var layout: String
    public var mode: ForwardMode
    public var passes: [PassResult]

    public init(layout: String, mode: ForwardMode, passes: [PassResult]) {
        self.layout = layout
        self.mode = mode
        self.passes = passes
    }
}
