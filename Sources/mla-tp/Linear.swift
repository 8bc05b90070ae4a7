import ArgumentParser
import Measure
import MLA
import Planner
import Report
import SwiftMPI
import TensorCore
import TensorParallel

/// `mla-tp linear`: the foundation's demonstration, `Y = (X·W1ᵀ)·W2ᵀ + b` with W1 column-parallel
/// and W2 row-parallel, checked against the unsharded product (`TPCheck`).
struct Linear: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Column→row parallel pair Y = (X·W1ᵀ)·W2ᵀ + b under TP, checked against the unsharded result.")

    @Option(parsing: .unconditional, help: "Rows of X.") var tokens = 8
    @Option(parsing: .unconditional, help: "Columns of X (W1's in-features).") var input = 64
    @Option(parsing: .unconditional, help: "W1's out-features = W2's in-features (split across ranks).") var hidden = 96
    @Option(parsing: .unconditional, help: "W2's out-features.") var output = 32
    @Option(parsing: .unconditional, help: "Seed of the TP-independent weights.") var seed: UInt64 = 7

    func validate() throws {
        try requireAtLeast(0, "--tokens", tokens, "the rows of X")
        try requireAtLeast(1, "--input", input, "the columns of X, W1's in-features")
        try requireAtLeast(1, "--hidden", hidden, "W1's out-features, split across the ranks")
        try requireAtLeast(1, "--output", output, "W2's out-features")
    }

    func run() throws {
        let world = try Runtime.start()
        let budget = try Runtime.budget(world), tp = world.size
        // The weights' sizes first (no tokens), so that the one too large is named, then the tokens.
        try budget.require(.init("--hidden", hidden)) { v throws(CountOverflow) in
            try SizeBudget.linear(tokens: 0, input: min(input, 1), hidden: v, output: min(output, 1), tp: tp)
        }
        try budget.require(.init("--input", input)) { v throws(CountOverflow) in
            try SizeBudget.linear(tokens: 0, input: v, hidden: hidden, output: min(output, 1), tp: tp)
        }
        try budget.require(.init("--output", output)) { v throws(CountOverflow) in
            try SizeBudget.linear(tokens: 0, input: input, hidden: hidden, output: v, tp: tp)
        }
        try budget.require(.init("--tokens", tokens)) { v throws(CountOverflow) in
            try SizeBudget.linear(tokens: v, input: input, hidden: hidden, output: output, tp: tp)
        }
        let pair = try LinearPair(tokens: tokens, input: input, hidden: hidden, output: output, seed: seed)
        let y = try pair.forward(Shard(rank: world.rank, size: world.size), Collectives(world))
        let verdict = try TPCheck.verify(y, world: world) { try pair.forward(.whole, .local) }
        let out = RankOutput(rank: world.rank)
        out.printRoot("Y = (X·W1ᵀ)·W2ᵀ + b, X [\(tokens), \(input)], W1 [\(hidden), \(input)] column-parallel, "
                      + "W2 [\(output), \(hidden)] row-parallel, tp=\(world.size)\n")
        out.printRoot(Format.table(["rank", "W1 shard (column)", "W2 shard (row)", "b (replicated)", "bytes"], (0..<world.size).map { r in
            let w1 = (hidden / world.size, input), w2 = (output, hidden / world.size)
            return ["\(r)", "[\(w1.0), \(w1.1)]", "[\(w2.0), \(w2.1)]", "[\(output)]", Format.bytes(4 * (w1.0 * w1.1 + w2.0 * w2.1 + output))]
        }))
        if let c = verdict.result {
            out.printRoot(String(format: "\nCheck against the unsharded product: max |Δ| = %.3e, relative %.3e (tolerance %.0e)  %@",
                                 c.maxAbsDiff, c.relative, c.tolerance, c.pass ? "PASS" : "FAIL"))
        }
        if !verdict.pass { throw CLIError(code: .numeric, message: "the sharded product differs from the unsharded one — this is a bug; report it") }
        try Environment.finalize()
    }
}
