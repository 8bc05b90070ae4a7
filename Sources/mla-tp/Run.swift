import ArgumentParser
import Foundation
import MLA
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
        let (config, modelName) = try model.loadConfig()
        try config.validate(tp: tp)
        if layer < 0 || layer >= (config.numHiddenLayers ?? Int.max) {
            throw CLIError.usage(CheckpointError.layerOutOfRange(layer: layer, layers: config.numHiddenLayers ?? 0).description)
        }
        let (x, batch) = try loadInput(config)
        let source = try model.weightSource(for: config)
        let attention = try MLAAttention(config: config, layer: layer, shard: Shard(rank: rank, size: tp),
                                         gateLayout: model.gate, source: source)
        attention.checkEveryStage = checkStages
        attention.faultHook = FaultInjection.hook(rank: rank)
        let collectives = reduce.collectives(world)
        let serving = decodeSteps != 0 || prefillChunk != nil
        let schedule = serving ? try ServingSchedule(batch: batch, decodeSteps: decodeSteps, prefillChunk: prefillChunk) : nil
        let out = try schedule.map { try attention.serve(x, batch: batch, schedule: $0, decode: decode, collectives: collectives) }
            ?? attention.forward(x, batch: batch, collectives: collectives)

        // Per-rank bytes read from the checkpoint and memory held, gathered to rank 0.
        let bytesRead = (source as? CheckpointWeights)?.bytesRead ?? 0
        let memory = ProcessMemory.current()
        let perRank = try world.allGather([Int64(bytesRead), Int64(memory.anonymousBytes), Int64(attention.weightBytes)])

        let fullBytes = ShardingPlan(config: config, tp: 1, gate: .column).bytesPerRank
        let doCheck = check ?? (Double(fullBytes) * 2 < Double(ProcessInfo.processInfo.physicalMemory) / 4)
        var comparison: Comparison?
        if doCheck && rank == 0 {
            let reference = try MLAAttention(config: config, layer: layer, shard: .whole, gateLayout: .column,
                                             source: try model.weightSource(for: config))
            comparison = try Comparison(out, reference: try reference.forward(x, batch: batch, collectives: .local))
        }
        var verdict: [Int64] = [comparison.map { $0.passes(relativeTolerance: Run.tolerance) ? 1 : 0 } ?? 1]
        try world.broadcast(&verdict, root: 0)

        if rank == 0 {
            if let output { try writeOutput(out, to: output, config: config, tp: tp) }
            var report = RunReport(config: config, preset: modelName, layer: layer, tp: tp, gate: model.gate,
                                   batch: batch, counters: attention.counters, allReduceSeconds: collectives.seconds,
                                   comparison: comparison, tolerance: Run.tolerance)
            report.allReducePath = collectives.lastPath.rawValue
            report.ranks = report.ranks.map { row in
                var r = row
                r.bytesReadFromFiles = Int(perRank[3 * r.rank])
                r.anonymousMemory = Int(perRank[3 * r.rank + 1])
                r.bytes = Int(perRank[3 * r.rank + 2])
                return r
            }
            report.output = output
            if let schedule {
                report.serving = .init(decodeSteps: decodeSteps, prefillChunk: prefillChunk, decode: decode, steps: schedule.steps.count,
                                       cacheBytesPerToken: KVCache.bytesPerToken(config: config),
                                       cacheBytesPerRank: KVCache.bytesPerToken(config: config) * batch.tokenCount)
            }
            RankOutput(rank: rank).printRoot(json ? try report.json() : report.text())
        }
        if verdict[0] == 0 {
            throw CLIError(code: .numeric, message: "the TP result differs from the unsharded forward by more than \(Run.tolerance) relative — this is a sharding bug; rerun with --check-stages and report it")
        }
        try Environment.finalize()
    }

    /// The input file, or seeded random hidden states of `--tokens`/`--seqs`.
    func loadInput(_ config: MLAConfig) throws -> (Matrix, Batch) {
        if let inputFile {
            guard input.tokens == nil, input.seqs == nil else {
                throw CLIError.usage("--input gives the tokens; drop --tokens/--seqs")
            }
            let file = try InputFile(path: inputFile, hiddenSize: config.hiddenSize)
            return (file.hiddenStates, file.batch)
        }
        let batch = try input.batch()
        try TokenBudget.check(tokens: batch.tokenCount, config: config, tp: Failure.world?.size ?? 1)
        return (try seededInput(tokens: batch.tokenCount, hidden: config.hiddenSize, seed: model.seed), batch)
    }

    /// Writes `attn_output` with metadata (tp, gate, layer, config hash), atomically.
    func writeOutput(_ out: Matrix, to path: String, config: MLAConfig, tp: Int) throws {
        var writer = SafeTensorsWriter(metadata: [
            "format": "pt", "producer": "mla-tp", "tp": "\(tp)", "gate": model.gate.rawValue,
            "layer": "\(layer)", "config_hash": try config.hash(),
        ])
        try writer.add("attn_output", floats: out.storage, shape: [out.rows, out.cols])
        try writer.write(to: path)
    }
}
