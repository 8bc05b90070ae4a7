import Jobs
import MLA
import Measure
import Planner
import SwiftMPI
import TensorCore
import TensorParallel

/// `run`'s input: from a file or seeded, each size asked of the budget before it is allocated.
extension Run {
    /// The input file, or seeded random hidden states of `--tokens`/`--seqs`, each size through
    /// the budget first (the model's weights, then the tokens), and whether rank 0 checks
    /// against the unsharded forward (by default: when that fits beside everything else).
    static func loadInput(_ config: MLAConfig, name: String, model: ModelChoice, _ s: RunSpec, world: Communicator,
                          tp: Int) throws -> (Matrix, Batch, Bool) {
        let budget = try Runtime.budget(world)
        let file = try s.input.map { try InputFile(path: $0, hiddenSize: config.hiddenSize) }
        let lengths = s.lengths
        let sequences = file?.sequences ?? lengths.count
        let size: SizeBudget.Size
        if let file {
            size = .init("hidden_states rows of \(file.path)", file.tokens, remedy: "pass fewer tokens in the input file, or run the ranks on more hosts")
        } else {
            guard let total = try? Checked.sum(of: lengths, what: "") else {
                throw CapacityError.overflow(size: .init("--seqs", lengths.max() ?? 0, shown: s.seqs.map(IntList<Lengths>.init)?.description),
                                             what: "tokens (the sum of the sequence lengths)", largest: nil)
            }
            size = .init(s.seqs != nil ? "--seqs (\(lengths.count) sequences, tokens in all)" : "--tokens", total)
        }
        func need(_ withCheck: Bool) -> (Int) throws(CountOverflow) -> SizeBudget.Need {
            { t throws(CountOverflow) in
                try SizeBudget.forward(tokens: t, sequences: sequences, config: config, tp: tp, gate: model.gate, serving: s.serving,
                                       check: withCheck, output: s.output != nil)
            }
        }
        var checkOn = s.check ?? TPCheck.fits(config: config)
        if s.check == nil, checkOn, (try? budget.require(size, need(true))) == nil { checkOn = false }
        try budget.requireWeights(config: config, tp: tp, gate: model.gate, check: checkOn, model: name)
        try budget.require(size, need(checkOn))
        if let file {
            let (x, batch) = try file.load()
            return (x, batch, checkOn)
        }
        let batch = try Batch(sequenceLengths: lengths)
        return (try seededInput(tokens: batch.tokenCount, hidden: config.hiddenSize, seed: model.seed), batch, checkOn)
    }
}
