import ArgumentParser
import Foundation
import MLA
import SwiftMPI
import TensorCore
import TensorParallel

/// `mla-tp run` (the default): one attention layer under TP, checked against the unsharded forward.
struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run one MLA attention layer under tensor parallelism and check it against the unsharded forward.")

    @OptionGroup var model: ModelOptions
    @OptionGroup var input: InputOptions

    @Option(help: "Layer index (names model.layers.N.self_attn.*).")
    var layer: Int = 0

    @Flag(inversion: .prefixedNo, help: "Compare with the unsharded forward on rank 0 (default: on when it fits in memory).")
    var check: Bool?

    @Flag(help: "Check every stage (q, kv, scores, gate, o_proj) for NaN/Inf, not only the output.")
    var checkStages = false

    @Flag(help: "Print the report as one JSON document.")
    var json = false

    /// Relative tolerance of the check (max |Δ| / max |reference|).
    static let tolerance: Float = 1e-5

    func run() throws {
        let world = try Runtime.start()
        let tp = world.size, rank = world.rank
        let config = try model.presetConfig()
        try config.validate(tp: tp)
        guard layer >= 0, layer < (config.numHiddenLayers ?? Int.max) else {
            throw CLIError.usage("--layer \(layer) is out of range: the model has \(config.numHiddenLayers ?? 0) layers (0 ..< \(config.numHiddenLayers ?? 0))")
        }
        let batch = try input.batch()
        let x = try seededInput(tokens: batch.tokenCount, hidden: config.hiddenSize, seed: model.seed)
        let source = SeededWeights(seed: model.seed)
        let attention = try MLAAttention(config: config, layer: layer, shard: Shard(rank: rank, size: tp),
                                         gateLayout: model.gate, source: source)
        attention.checkEveryStage = checkStages
        let collectives = Collectives(world)
        let out = try attention.forward(x, batch: batch, collectives: collectives)

        let fullBytes = ShardingPlan(config: config, tp: 1, gate: .column).bytesPerRank
        let doCheck = check ?? (Double(fullBytes) * 2 < Double(ProcessInfo.processInfo.physicalMemory) / 4)
        var comparison: Comparison?
        if doCheck && rank == 0 {
            let reference = try MLAAttention(config: config, layer: layer, shard: .whole, gateLayout: .column, source: source)
            comparison = try Comparison(out, reference: try reference.forward(x, batch: batch, collectives: .local))
        }
        var verdict: [Int64] = [comparison.map { $0.passes(relativeTolerance: Run.tolerance) ? 1 : 0 } ?? 1]
        try world.broadcast(&verdict, root: 0)

        if rank == 0 {
            let report = RunReport(config: config, preset: model.preset ?? "tiny", layer: layer, tp: tp, gate: model.gate,
                                   batch: batch, counters: attention.counters, allReduceSeconds: collectives.seconds,
                                   comparison: comparison, tolerance: Run.tolerance)
            RankOutput(rank: rank).printRoot(json ? try report.json() : report.text())
        }
        if verdict[0] == 0 {
            throw CLIError(code: .numeric, message: "the TP result differs from the unsharded forward by more than \(Run.tolerance) relative — this is a sharding bug; rerun with --check-stages and report it")
        }
        try Environment.finalize()
    }
}
