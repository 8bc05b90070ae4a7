import MLA
import Report
import SwiftMPI
import TensorCore
import TensorParallel

/// One layout's work in `mla-tp invariance`: the same sequences, batched and chunked each way
/// the passes say.
public struct InvarianceSpec: Codable, Sendable, Equatable {
    public var dp = 1
    public var dcp = 1
    /// How each TP group holds the latent down-projections (a layout name's `-latcol` / `-latseq`).
    public var latent: LatentProjection = .replicated
    /// Tokens of each sequence, by id. Sequence i's hidden states are its rows of one seeded
    /// input of every sequence in id order: the same values in whatever batch it runs.
    public var lengths: [Int] = []
    public var passes: [InvariancePass] = []
    public var decode: DecodePath = .absorbed
    /// Where rank 0 writes the `InvarianceTrace`.
    public var out = ""

    public init() {}
}

/// Runs an `InvarianceSpec` on this rank: every pass, every batch of it as a `RunJob` with its
/// stages hashed, the hashes of every rank combined on rank 0 by sequence id.
public struct InvarianceJob {
    public var config: MLAConfig
    public var choice: ModelChoice
    public var mode: ForwardMode
    public var spec: InvarianceSpec
    public var layout: ParallelLayout

    public init(config: MLAConfig, choice: ModelChoice, mode: ForwardMode, spec: InvarianceSpec, layout: ParallelLayout) {
        self.config = config
        self.choice = choice
        self.mode = mode
        self.spec = spec
        self.layout = layout
    }

    /// The trace on rank 0 (nil elsewhere). `collectives` and `source` as for `RunJob.execute`.
    public func execute(world: Communicator, collectives: (Communicator) -> Collectives,
                        source: () throws -> WeightSource) throws -> InvarianceTrace? {
        let hidden = config.hiddenSize
        let catalogue = try Batch(sequenceLengths: spec.lengths)
        let all = try seededInput(tokens: catalogue.tokenCount, hidden: hidden, seed: choice.seed)     // [Σ lengths, hidden]
        let longest = spec.lengths.max() ?? 0
        var passes: [InvarianceTrace.PassResult] = []
        for pass in spec.passes {
            var sequences: [InvarianceTrace.Sequence] = []
            for ids in pass.arrangement.batches(sequences: spec.lengths.count) {
                let batch = try Batch(sequenceLengths: ids.map { spec.lengths[$0] })
                var x = Matrix(rows: batch.tokenCount, cols: hidden)                                   // [T, hidden]
                for (b, id) in ids.enumerated() {
                    let from = catalogue.tokens(of: id), to = batch.tokens(of: b)
                    x.storage.replaceSubrange(to.lowerBound * hidden ..< to.upperBound * hidden,
                                              with: all.storage[from.lowerBound * hidden ..< from.upperBound * hidden])
                }
                let serving = pass.chunking.serving(longest: longest).map { RunJob.Serving(decodeSteps: $0.decodeSteps, prefillChunk: $0.prefillChunk) }
                var job = RunJob(config: config, model: "", layer: 0, gate: choice.gate, x: x, batch: batch, layout: layout, serving: serving,
                                 decode: spec.decode, check: false, checkEveryStage: false, storage: choice.storage, cacheDType: choice.kvCacheDType, mode: mode)
                job.hashSequences = ids
                let outcome = try job.execute(world: world, collectives: collectives, source: source)
                let gathered = try world.allGather(value: outcome.stageHashes)
                guard world.rank == 0 else { continue }
                let stages = StageHashes.combine(gathered)
                for (b, id) in ids.enumerated() {
                    let rows = batch.tokens(of: b)
                    let bits = outcome.output.storage[rows.lowerBound * hidden ..< rows.upperBound * hidden].map(\.bitPattern)
                    var output = BitHash()
                    for w in bits { output.feed(w) }
                    let hashes = HashedStage.allCases.compactMap { stage in
                        (stage == .output ? output : stages[id]?[stage]).map { InvarianceTrace.StageHash(stage: stage, hash: $0) }
                    }
                    sequences.append(.init(id: id, tokens: rows.count, stages: hashes, output: bits))
                }
            }
            passes.append(.init(pass: pass, sequences: sequences.sorted { $0.id < $1.id }))
        }
        return world.rank == 0 ? InvarianceTrace(layout: layout.description, mode: mode, passes: passes) : nil
    }
}
