import ArgumentParser
import Foundation
import Jobs
import Measure
import MLA
import Planner
import Report
import SafeTensors
import SwiftMPI
import TensorCore
import TensorParallel

/// `mpirun -n K mla-tp sweep-step`: one step of `sweep` (also used by `plan --hardware
/// cpu-measured`): times repeated forwards per rank and per stage (`StepTimer`), or, with
/// `--probe`, measures the rates the projection needs (`RateProbe`). Rank 0 writes JSON.
struct SweepStep: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sweep-step",
        abstract: "Time repeated forwards per rank (the sweep's step), or measure the rates of the kernels a run uses with --probe.",
        shouldDisplay: false)

    @OptionGroup var model: ModelOptions
    @OptionGroup var reduce: CollectiveOptions
    @OptionGroup var mode: ModeOptions

    @Option(parsing: .unconditional, help: "Prefill tokens (one sequence).")
    var tokens: Int = 128

    @Option(parsing: .unconditional, help: "Time decode steps after prefilling this many tokens into the latent cache (instead of a prefill).")
    var context: Int?

    @Option(help: "Decode path with --context: naive or absorbed.")
    var decode: DecodePath = .absorbed

    @OptionGroup var repeats: RepeatOptions

    @Flag(help: "Measure the rates of the kernels a run uses (GEMMs, attention kernels, weight streaming, the reduction) instead of timing a forward.")
    var probe = false

    @Flag(help: "Measure the rates first, in the same job, then time the forward (the result holds both).")
    var probeFirst = false

    @Option(parsing: .unconditional, help: "Shape M,N,K of the probe's sgemm (x [M, K] · W with W [K, N]); sweep and plan pass the forward's tokens and hidden size.",
            transform: ProbeShape.init(parsing:))
    var probeShape = ProbeShape(RateProbe.Shape(m: 1024, n: 1024, k: 1024))

    @Option(parsing: .unconditional, help: "Bytes of the probe's large allreduce (sweep and plan pass the forward's [T, hidden] f32 payload).")
    var probeAllreduceBytes: Int = 4 << 20

    @Option(help: "Write the JSON result here (rank 0), else print it.")
    var out: String?

    func validate() throws {
        try requireAtLeast(1, repeats.flag, repeats.count, "the timed forwards")
        try requireAtLeast(0, "--tokens", tokens, "the prefill tokens")
        try requireAtLeast(0, "--context", context ?? 0, "the tokens cached before the timed decode steps")
        try requireAtLeast(0, "--probe-allreduce-bytes", probeAllreduceBytes, "the bytes of the probe's large allreduce")
        try reduce.validate(dtype: model.dtype)
        try mode.validate(model: model, reduce: reduce, decode: decode)
    }

    /// `sweep-step`'s own flags as a value (the model's and the reduction's are `model.choice`, `reduce.choice`).
    var spec: StepSpec {
        var s = StepSpec()
        (s.tokens, s.context, s.decode, s.repeats) = (tokens, context, decode, repeats.count)
        (s.probe, s.probeFirst, s.probeShape, s.probeAllReduceBytes, s.out) = (probe, probeFirst, probeShape.shape, probeAllreduceBytes, out)
        return s
    }

    func run() throws { try SweepStep.perform(model.choice, reduce.choice, mode.mode, spec, repeatFlag: repeats.flag) }

    /// The step from its description: the flags of this command, or a job file from `sweep`.
    /// `repeatFlag` names the repeat count in messages as it was spelled.
    static func perform(_ model: ModelChoice, _ reduction: ReductionChoice, _ mode: ForwardMode, _ s: StepSpec,
                        repeatFlag: String = "--repeat") throws {
        if let out = s.out { try OutputTarget.check(out, against: model.inputFiles) }
        let world = try Runtime.start()
        let budget = try Runtime.budget(world)
        let shape = s.probeShape
        if s.probe || s.probeFirst {
            try budget.require(.init("--probe-shape", shape.m, shown: "\(ProbeShape(shape))", remedy: "use a smaller --probe-shape"), searchable: false) { _ throws(CountOverflow) in
                .init(perRank: try SizeBudget.probeOnly(m: shape.m, n: shape.n, k: shape.k, allReduceBytes: 0))
            }
            try budget.require(.init("--probe-allreduce-bytes", s.probeAllReduceBytes)) { v throws(CountOverflow) in
                .init(perRank: try SizeBudget.probeOnly(m: shape.m, n: shape.n, k: shape.k, allReduceBytes: v))
            }
        }
        // The model's config, read once: for the attention probes (their dimensions, on the heads
        // one of these ranks holds) and for the timed forward.
        let needsConfig = !s.probe || s.probeAttentionTokens != nil || s.probeDecodeContext != nil
        let loaded = needsConfig ? try model.loadConfig() : nil
        let attention = try loaded.flatMap { (c, _) in try s.probeAttentionTokens.map { t in
            try AttentionProbe(config: c, heads: min(c.localHeads(tp: world.size), 16), tokens: t, precision: model.dtype)
        } }
        let absorbed = loaded.flatMap { (c, _) in s.probeDecodeContext.map {
            AbsorbedProbe(config: c, heads: c.localHeads(tp: world.size), cached: $0, precision: model.dtype)
        } }
        // The decode's own weights where the model is read (a sweep's or plan's probe), one long
        // one otherwise; made in the call, so that they are freed before a timed layer is built.
        func stream() -> StreamProbe {
            loaded.map { (c, _) in StreamProbe(storage: model.storage, config: c, tp: world.size, gate: model.gate) } ?? StreamProbe(storage: model.storage)
        }
        if s.probe { try FaultInjection.hook(rank: world.rank)?() }
        let rates = s.probe || s.probeFirst ? try RateProbe.measure(world, shape: shape, allReduceBytes: s.probeAllReduceBytes, attention: attention,
                                                                     fixedOrder: mode == .invariant ? model.dtype : nil,
                                                                     reduction: reduction.collectives(world, dtype: model.dtype, mode: mode),
                                                                     stream: stream(), absorbed: absorbed,
                                                                     exchanges: s.probe) : nil   // a timed job's same-job rates price no exchange
        let text: String
        if s.probe, let rates {
            text = try Report.Format.json(rates)
        } else {
            let (config, name) = try loaded ?? model.loadConfig()
            try config.validate(tp: world.size)
            if mode == .invariant { try InvariantLayout.check(heads: config.numAttentionHeads, tp: world.size) }
            let probed = s.probeFirst ? (shape.m, shape.n, shape.k, s.probeAllReduceBytes) : nil
            func need(tokens: Int, context: Int?, repeats: Int) throws(CountOverflow) -> SizeBudget.Need {
                try SizeBudget.step(tokens: tokens, context: context, repeats: repeats, config: config, tp: world.size, gate: model.gate, probe: probed)
            }
            try budget.requireWeights(config: config, tp: world.size, gate: model.gate, check: false, model: name)
            try budget.require(.init(repeatFlag, s.repeats)) { v throws(CountOverflow) in try need(tokens: 1, context: nil, repeats: v) }
            if let context = s.context {
                try budget.require(.init("--context", context)) { v throws(CountOverflow) in try need(tokens: 0, context: v, repeats: s.repeats) }
            } else {
                try budget.require(.init("--tokens", s.tokens)) { v throws(CountOverflow) in try need(tokens: v, context: nil, repeats: s.repeats) }
            }
            let layer = try MLAAttention(config: config, shard: Shard(rank: world.rank, size: world.size), gateLayout: model.gate,
                                         source: try model.weightSource(for: config), storage: model.storage, mode: mode)
            let collectives = reduction.collectives(world, dtype: model.dtype, mode: mode)
            collectives.separateWait = true             // the barrier before the reduce: waiting for slower ranks, drawn apart
            var result = try StepTimer.time(s.context.map { .decode(context: $0, path: s.decode) } ?? .prefill(tokens: s.tokens),
                                            layer: layer, collectives: collectives, world: world, seed: model.seed, model: name, repeats: s.repeats,
                                            cacheDType: model.kvCacheDType)
            result.rates = rates
            text = try Report.Format.json(result)
        }
        if world.rank == 0 {
            if let out = s.out { try AtomicFile.write(Data(text.utf8), to: out) } else { RankOutput(rank: 0).printRoot(text) }
        }
        try Environment.finalize()
    }
}
