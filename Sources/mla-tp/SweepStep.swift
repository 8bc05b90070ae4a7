import ArgumentParser
import Foundation
import Measure
import MLA
import Report
import SafeTensors
import SwiftMPI
import TensorParallel

/// `mpirun -n K mla-tp sweep-step`: one step of `sweep` (also used by `plan --hardware
/// cpu-measured`): times repeated forwards per rank and per stage (`StepTimer`), or, with
/// `--probe`, measures the rates the projection needs (`RateProbe`). Rank 0 writes JSON.
struct SweepStep: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sweep-step",
        abstract: "Time repeated forwards per rank (the sweep's step), or measure sgemm/copy/allreduce rates with --probe.",
        shouldDisplay: false)

    @OptionGroup var model: ModelOptions
    @OptionGroup var reduce: CollectiveOptions

    @Option(help: "Prefill tokens (one sequence).")
    var tokens: Int = 128

    @Option(help: "Time decode steps after prefilling this many tokens into the latent cache (instead of a prefill).")
    var context: Int?

    @Option(help: "Decode path with --context: naive or absorbed.")
    var decode: DecodePath = .absorbed

    @Option(help: "Timed forwards (after one warm-up).")
    var repeats: Int = 5

    @Flag(help: "Measure sgemm, copy and allreduce rates instead of timing a forward.")
    var probe = false

    @Flag(help: "Measure the rates first, in the same job, then time the forward (the result holds both).")
    var probeFirst = false

    @Option(help: "Shape M,N,K of the probe's sgemm (x [M, K] · W with W [K, N]); sweep and plan pass the forward's tokens and hidden size.",
            transform: ProbeShape.init(parsing:))
    var probeShape = ProbeShape(RateProbe.Shape(m: 1024, n: 1024, k: 1024))

    @Option(help: "Bytes of the probe's large allreduce (sweep and plan pass the forward's [T, hidden] f32 payload).")
    var probeAllreduceBytes: Int = 4 << 20

    @Option(help: "Write the JSON result here (rank 0), else print it.")
    var out: String?

    func validate() throws {
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1") }
        guard tokens >= 0, (context ?? 0) >= 0 else { throw ValidationError("--tokens and --context must be ≥ 0") }
        guard probeAllreduceBytes >= 0 else { throw ValidationError("--probe-allreduce-bytes must be ≥ 0") }
    }

    func run() throws {
        let world = try Runtime.start()
        let rates = probe || probeFirst ? try RateProbe.measure(world, shape: probeShape.shape, allReduceBytes: probeAllreduceBytes) : nil
        let text: String
        if probe, let rates {
            text = try Report.Format.json(rates)
        } else {
            let (config, name) = try model.loadConfig()
            try config.validate(tp: world.size)
            try TokenBudget.check(tokens: max(tokens, context ?? 0), config: config, tp: world.size)
            let layer = try MLAAttention(config: config, shard: Shard(rank: world.rank, size: world.size), gateLayout: model.gate,
                                         source: try model.weightSource(for: config))
            let collectives = reduce.collectives(world)
            collectives.separateWait = true             // the barrier before the reduce: waiting for slower ranks, drawn apart
            var result = try StepTimer.time(context.map { .decode(context: $0, path: decode) } ?? .prefill(tokens: tokens),
                                            layer: layer, collectives: collectives, world: world, seed: model.seed, model: name, repeats: repeats)
            result.rates = rates
            text = try Report.Format.json(result)
        }
        if world.rank == 0 {
            if let out { try AtomicFile.write(Data(text.utf8), to: out) } else { RankOutput(rank: 0).printRoot(text) }
        }
        try Environment.finalize()
    }
}
