import ArgumentParser
import Measure
import MLA
import Report
import SwiftMPI
import TensorCore
import TensorParallel

/// `mla-tp linear`: the foundation's demonstration, `Y = (X·W1ᵀ)·W2ᵀ + b` with W1 column-parallel
/// and W2 row-parallel, checked against the unsharded product (`TPCheck`).
struct Linear: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Column→row parallel pair Y = (X·W1ᵀ)·W2ᵀ + b under TP, checked against the unsharded result.")

    @Option(help: "Rows of X.") var tokens = 8
    @Option(help: "Columns of X (W1's in-features).") var input = 64
    @Option(help: "W1's out-features = W2's in-features (split across ranks).") var hidden = 96
    @Option(help: "W2's out-features.") var output = 32
    @Option(help: "Seed of the TP-independent weights.") var seed: UInt64 = 7

    func validate() throws {
        guard tokens >= 0 else { throw ValidationError("--tokens \(tokens) must be ≥ 0") }
        guard input >= 1, hidden >= 1, output >= 1 else { throw ValidationError("--input, --hidden and --output must be ≥ 1") }
    }

    func run() throws {
        let world = try Runtime.start()
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
