import ArgumentParser
import MLA
import SwiftMPI
import TensorCore
import TensorParallel

/// `mla-tp linear`: the foundation's demonstration, `Y = (X·W1ᵀ)·W2ᵀ + b` with W1 column-parallel
/// and W2 row-parallel, checked against the unsharded product.
struct Linear: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Column→row parallel pair Y = (X·W1ᵀ)·W2ᵀ + b under TP, checked against the unsharded result.")

    @Option(help: "Rows of X.") var tokens = 8
    @Option(help: "Columns of X (W1's in-features).") var input = 64
    @Option(help: "W1's out-features = W2's in-features (split across ranks).") var hidden = 96
    @Option(help: "W2's out-features.") var output = 32
    @Option(help: "Seed of the TP-independent weights.") var seed: UInt64 = 7

    func run() throws {
        let world = try Runtime.start()
        let shard = Shard(rank: world.rank, size: world.size)
        let source = SeededWeights(seed: seed)
        let x = try seededInput(tokens: tokens, hidden: input, seed: seed)
        func pair(_ s: Shard) throws -> (ColumnParallelLinear, RowParallelLinear) {
            (try ColumnParallelLinear(name: "w1", inFeatures: input, outFeatures: hidden, bias: false, shard: s,
                                      source: source, initializer: .random(std: 0.1)),
             try RowParallelLinear(name: "w2", inFeatures: hidden, outFeatures: output, bias: true, shard: s,
                                   source: source, initializer: .random(std: 0.1), biasInitializer: .random(std: 1)))
        }
        func forward(_ layers: (ColumnParallelLinear, RowParallelLinear), _ c: Collectives) throws -> Matrix {
            var h = Matrix(rows: tokens, cols: layers.0.weight.rows)      // [T, hidden/tp]
            try layers.0.forward(x, into: &h)
            var y = Matrix(rows: tokens, cols: output)                    // [T, out]
            try layers.1.forward(h, into: &y, collectives: c)
            return y
        }
        let layers = try pair(shard)
        let y = try forward(layers, Collectives(world))
        var rows: [[String]] = []
        for r in 0..<world.size {
            let w1 = (hidden / world.size, input), w2 = (output, hidden / world.size)
            rows.append(["\(r)", "[\(w1.0), \(w1.1)]", "[\(w2.0), \(w2.1)]", "[\(output)]",
                         formatBytes(4 * (w1.0 * w1.1 + w2.0 * w2.1 + output))])
        }
        let out = RankOutput(rank: world.rank)
        var pass: [Int64] = [1]
        if world.isRoot {
            let reference = try forward(try pair(.whole), .local)
            let cmp = try Comparison(y, reference: reference)
            pass[0] = cmp.passes(relativeTolerance: 1e-5) ? 1 : 0
            out.printRoot("Y = (X·W1ᵀ)·W2ᵀ + b, X [\(tokens), \(input)], W1 [\(hidden), \(input)] column-parallel, "
                          + "W2 [\(output), \(hidden)] row-parallel, tp=\(world.size)\n")
            out.printRoot(table(["rank", "W1 shard (column)", "W2 shard (row)", "b (replicated)", "bytes"], rows))
            out.printRoot(String(format: "\nCheck against the unsharded product: max |Δ| = %.3e, relative %.3e (tolerance 1e-05)  %@",
                                 cmp.maxAbsDiff, cmp.relative, pass[0] == 1 ? "PASS" : "FAIL"))
        }
        try world.broadcast(&pass, root: 0)
        if pass[0] == 0 { throw CLIError(code: .numeric, message: "the sharded product differs from the unsharded one — this is a bug; report it") }
        try Environment.finalize()
    }
}
