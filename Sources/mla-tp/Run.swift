import ArgumentParser
import Foundation
import Jobs
import MLA
import Measure
import Planner
import Report
import SafeTensors
import SwiftMPI
import TensorCore
import TensorParallel

/// `mla-tp run` (the default): one attention layer under TP, checked against the unsharded forward.
struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run one MLA attention layer under tensor parallelism and check it against the unsharded forward.",
        discussion: """
            mpirun -n K mla-tp run --model DIR [--layer N] [--input FILE] [--output FILE] [--gate …]
            mpirun -n K mla-tp run --config FILE --weights FILE_OR_DIR …
            mpirun -n K mla-tp [--preset tiny|deepseek-v3|deepseek-v2-lite] [--tokens T | --seqs 7,1,12]
            """)

    @OptionGroup var model: ModelOptions
    @OptionGroup var reduce: CollectiveOptions
    @OptionGroup var mode: ModeOptions
    @OptionGroup var input: InputOptions

    @Option(parsing: .unconditional, help: "Layer index: its tensors are model.layers.N.self_attn.*.")
    var layer: Int = 0

    @Option(name: .customLong("input"), help: "safetensors file with hidden_states [T, hidden] (positions [T], cu_seqlens [B+1] optional).")
    var inputFile: String?

    @Option(help: "Write attn_output [T, hidden] F32 here (rank 0, atomically).")
    var output: String?

    @Option(parsing: .unconditional, help: "Serve through the latent KV cache: each sequence prefills its first len−D tokens, then decodes its last D one at a time.")
    var decodeSteps = 0

    @Option(parsing: .unconditional, help: "Prefill at most C tokens per sequence per step (chunked prefill through the cache).")
    var prefillChunk: Int?

    @Option(help: "Decode path: absorbed (W_UK folded into q, W_UV after attention) or naive (expand k and v).")
    var decode: DecodePath = .absorbed

    @Option(parsing: .unconditional, help: "Data-parallel attention: D groups of P/D ranks, tensor-parallel inside each; a batch's sequences are split between the groups.")
    var dp = 1

    @Option(parsing: .unconditional, help: "Decode context parallelism: split every sequence's cached tokens over C ranks of each tensor-parallel group (token i on rank i mod C).")
    var dcp = 1

    @Option(help: "How each tensor-parallel group holds q_a_proj and kv_a_proj_with_mqa: replicated (as the engines), column (each rank its 1/tp of the outputs, then an all-gather of the latent) or sequence (each rank a prefill's 1/tp of the tokens, then an all-gather).")
    var latentProj: LatentProjection = .replicated

    @Flag(help: "When tp does not divide the heads, pad them to a multiple of tp with zero heads (SGLang's way): each padded head holds zero weights and adds exactly zero; the report shows the waste.")
    var padHeads = false

    @Flag(inversion: .prefixedNo, help: "Compare with the unsharded forward on rank 0 (default: on when it fits in memory).")
    var check: Bool?

    @Flag(help: "Check every stage (q, kv, attention, gate, o_proj) for NaN/Inf, not only the output.")
    var checkStages = false

    @Flag(help: "Print the report as one JSON document.")
    var json = false

    func validate() throws {
        try requireAtLeast(0, "--layer", layer, "layers count from 0")
        try requireAtLeast(0, "--decode-steps", decodeSteps, "the last D tokens of each sequence are decoded one at a time")
        if let prefillChunk { try requireAtLeast(1, "--prefill-chunk", prefillChunk, "the most tokens a sequence prefills per step") }
        try requireAtLeast(1, "--dp", dp, "1 means no data-parallel groups")
        try requireAtLeast(1, "--dcp", dcp, "1 means no context split")
        if dcp > 1 && decode == .naive {
            throw ValidationError("--decode naive expands the whole cache on every rank, which --dcp \(dcp) splits — use --decode absorbed (the default) with --dcp")
        }
        try reduce.validate(dtype: model.dtype)
        try mode.validate(model: model, reduce: reduce, decode: decode)
        if inputFile != nil, input.tokens != nil || input.seqs != nil {
            throw ValidationError("--input gives the tokens and their sequences — drop --tokens/--seqs, or drop --input")
        }
    }

    /// `run`'s own flags as a value (the model's and the reduction's are `model.choice`, `reduce.choice`).
    var spec: RunSpec {
        var s = RunSpec()
        (s.layer, s.input, s.output, s.tokens, s.seqs) = (layer, inputFile, output, input.tokens, input.seqs?.values)
        (s.decodeSteps, s.prefillChunk, s.decode, s.dp, s.dcp, s.latent) = (decodeSteps, prefillChunk, decode, dp, dcp, latentProj)
        s.padHeads = padHeads
        (s.check, s.checkStages, s.json) = (check, checkStages, json)
        return s
    }

    func run() throws { try Run.perform(model.choice, reduce.choice, mode.mode, spec) }

    /// `run`'s work from its description: the flags of this command, or a job file from a parent.
    static func perform(_ model: ModelChoice, _ reduction: ReductionChoice, _ mode: ForwardMode, _ s: RunSpec) throws {
        if let output = s.output { try OutputTarget.check(output, against: model.inputFiles + (s.input.map { [$0] } ?? [])) }
        let world = try Runtime.start()
        let (config, name) = try model.loadConfig()
        let layout = try ParallelLayout(ranks: world.size, dp: s.dp, dcp: s.dcp, latent: s.latent)
        try config.validate(tp: layout.tp, latent: layout.latent, padHeads: s.padHeads)
        if mode == .invariant { try InvariantLayout.check(heads: config.numAttentionHeads, tp: layout.tp, dcp: layout.dcp) }
        if s.layer >= (config.numHiddenLayers ?? Int.max) {
            throw CLIError.usage(CheckpointError.layerOutOfRange(layer: s.layer, layers: config.numHiddenLayers ?? 0).description)
        }
        let (x, batch, checkOn) = try loadInput(config, name: name, model: model, s, world: world, tp: layout.tp)
        var job = RunJob(config: config, model: name, layer: s.layer, gate: model.gate, x: x, batch: batch, layout: layout,
                         serving: s.serving ? RunJob.Serving(decodeSteps: s.decodeSteps, prefillChunk: s.prefillChunk) : nil,
                         decode: s.decode, check: checkOn, checkEveryStage: s.checkStages, storage: model.storage,
                         cacheDType: model.kvCacheDType, mode: mode, faultHook: FaultInjection.hook(rank: world.rank))
        (job.padHeads, job.passes) = (s.padHeads, s.passes)
        let outcome = try job.execute(world: world, collectives: { reduction.collectives($0, dtype: model.dtype, mode: mode) }) {
            let source = try model.weightSource(for: config)
            if case let .checkpoint(_, weights) = model.origin { FaultInjection.holdLoad(CheckpointIndex.files(at: weights).last ?? weights, rank: world.rank) }
            return source
        }
        if var report = outcome.report {
            if let output = s.output {
                try RunJob.writeOutput(outcome.output, to: output, config: config, layout: layout, gate: model.gate, layer: s.layer)
                report.output = output
            }
            RankOutput(rank: world.rank).printRoot(s.json ? try report.json() : report.text())
        }
        guard outcome.verdict.pass else { throw RunJob.failure(outcome, config: config, gate: model.gate, precision: model.dtype) }
        try Environment.finalize()
    }
}
