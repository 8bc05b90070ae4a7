import ArgumentParser
import Foundation
import MLA
import Measure
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
    @OptionGroup var input: InputOptions

    @Option(help: "Layer index: its tensors are model.layers.N.self_attn.*.")
    var layer: Int = 0

    @Option(name: .customLong("input"), help: "safetensors file with hidden_states [T, hidden] (positions [T], cu_seqlens [B+1] optional).")
    var inputFile: String?

    @Option(help: "Write attn_output [T, hidden] F32 here (rank 0, atomically).")
    var output: String?

    @Option(help: "Serve through the latent KV cache: each sequence prefills its first len−D tokens, then decodes its last D one at a time.")
    var decodeSteps = 0

    @Option(help: "Prefill at most C tokens per sequence per step (chunked prefill through the cache).")
    var prefillChunk: Int?

    @Option(help: "Decode path: absorbed (W_UK folded into q, W_UV after attention) or naive (expand k and v).")
    var decode: DecodePath = .absorbed

    @Option(help: "Data-parallel attention: D groups of P/D ranks, tensor-parallel inside each; a batch's sequences are split between the groups.")
    var dp = 1

    @Option(help: "Decode context parallelism: split every sequence's cached tokens over C ranks of each tensor-parallel group (token i on rank i mod C).")
    var dcp = 1

    @Flag(inversion: .prefixedNo, help: "Compare with the unsharded forward on rank 0 (default: on when it fits in memory).")
    var check: Bool?

    @Flag(help: "Check every stage (q, kv, attention, gate, o_proj) for NaN/Inf, not only the output.")
    var checkStages = false

    @Flag(help: "Print the report as one JSON document.")
    var json = false

    func validate() throws {
        guard layer >= 0 else { throw ValidationError("--layer \(layer) must be ≥ 0 — layers count from 0") }
        guard decodeSteps >= 0 else { throw ValidationError("--decode-steps \(decodeSteps) must be ≥ 0 — the last D tokens of each sequence are decoded one at a time") }
        if let prefillChunk, prefillChunk < 1 {
            throw ValidationError("--prefill-chunk \(prefillChunk) must be ≥ 1 — the most tokens a sequence prefills per step")
        }
        guard dp >= 1, dcp >= 1 else { throw ValidationError("--dp \(dp) and --dcp \(dcp) must be at least 1 — 1 means no data-parallel groups / no context split") }
        if dcp > 1 && decode == .naive {
            throw ValidationError("--decode naive expands the whole cache on every rank, which --dcp \(dcp) splits — use --decode absorbed (the default) with --dcp")
        }
        if inputFile != nil, input.tokens != nil || input.seqs != nil {
            throw ValidationError("--input gives the tokens and their sequences — drop --tokens/--seqs, or drop --input")
        }
    }

    func run() throws {
        let world = try Runtime.start()
        let (config, name) = try model.loadConfig()
        let layout = try ParallelLayout(ranks: world.size, dp: dp, dcp: dcp)
        try config.validate(tp: layout.tp)
        if layer >= (config.numHiddenLayers ?? Int.max) {
            throw CLIError.usage(CheckpointError.layerOutOfRange(layer: layer, layers: config.numHiddenLayers ?? 0).description)
        }
        let (x, batch) = try loadInput(config, tp: layout.tp)
        let serving = decodeSteps != 0 || prefillChunk != nil
        let job = RunJob(config: config, model: name, layer: layer, gate: model.gate, x: x, batch: batch, layout: layout,
                         serving: serving ? RunJob.Serving(decodeSteps: decodeSteps, prefillChunk: prefillChunk) : nil,
                         decode: decode, check: check, checkEveryStage: checkStages, faultHook: FaultInjection.hook(rank: world.rank))
        let outcome = try job.execute(world: world, collectives: reduce.collectives) { try model.weightSource(for: config) }
        if var report = outcome.report {
            if let output {
                try RunJob.writeOutput(outcome.output, to: output, config: config, layout: layout, gate: model.gate, layer: layer)
                report.output = output
            }
            RankOutput(rank: world.rank).printRoot(json ? try report.json() : report.text())
        }
        guard outcome.verdict.pass else { throw RunJob.failure(outcome, config: config, gate: model.gate) }
        try Environment.finalize()
    }

    /// The input file, or seeded random hidden states of `--tokens`/`--seqs`.
    func loadInput(_ config: MLAConfig, tp: Int) throws -> (Matrix, Batch) {
        if let inputFile {
            let file = try InputFile(path: inputFile, hiddenSize: config.hiddenSize)
            return (file.hiddenStates, file.batch)
        }
        let batch = try Batch(sequenceLengths: input.lengths())
        try TokenBudget.check(tokens: batch.tokenCount, config: config, tp: tp)
        return (try seededInput(tokens: batch.tokenCount, hidden: config.hiddenSize, seed: model.seed), batch)
    }
}
