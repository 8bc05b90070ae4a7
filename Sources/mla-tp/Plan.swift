import ArgumentParser
import Foundation
import Jobs
import Measure
import MLA
import Planner
import Report
import SafeTensors
import TensorCore
import TensorParallel

/// `mla-tp plan`: what each rank holds, computes and moves at a given tp, from the config alone
/// (a plain process: no mpirun, no MPI, no weights), and optionally a time projection.
struct Plan: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Per-rank weights, FLOPs, KV cache and collective bytes at a given tp, and a time projection (no mpirun needed).",
        discussion: """
            mla-tp plan --preset deepseek-v3 --tp 8
            mla-tp plan --model DIR --tp 4 --gate replicated-sliced --tokens 512 --json
            mla-tp plan --preset deepseek-v3 --tp 8 --hardware h100
            mla-tp plan --preset deepseek-v2-lite --tp 2 --hardware cpu-measured [--rates FILE]
            mla-tp plan --preset deepseek-v3 --ranks 8 --layouts tp8,dp2xtp4,dp8,tp8-dcp8 --context 32768 --batch 64 \
              [--layers 61] [--hardware h200] [--memory-per-rank 141GB] [--dtype bf16] [--figure FILE.svg]
            mla-tp plan --preset deepseek-v3 --tp 8 --dtype bf16     (bytes at 2 per element; FLOPs unchanged)
            mla-tp plan --preset deepseek-v3 --ranks 8 --layouts tp8,dp8 --memory-per-rank 141GB --kv-cache-dtype fp8
              (the cache at 656 B per token, and the tokens that fit in each cache dtype)
            --hardware takes \(HardwareSpec.forms).
            cpu-measured measures this machine's rate for each kernel the run would use (the GEMM at the \
            prefill's [T, hidden] shape in the plan's precision, the attention kernel and the absorbed decode on \
            the model's heads, the decode's weight streaming, the reduction, DCP's all-gather and reduce-scatter) \
            with a short probe job on min(tp, cores) ranks, as a sweep does (or reads them from --rates, or from \
            a bench report with --bench-json).
            """)

    @OptionGroup var model: ModelOptions

    @Option(parsing: .unconditional, help: "Tensor-parallel size to plan for.")
    var tp: Int?

    @Option(parsing: .unconditional, help: "Ranks of the job, for --layouts.")
    var ranks: Int?

    @Option(help: "Comma-separated layouts of --ranks ranks to compare: tpT, dpD, dpDxtpT, each with an optional -dcpC (e.g. tp8,dp2xtp4,dp8,tp8-dcp8).")
    var layouts: String?

    @Option(parsing: .unconditional, help: "With --layouts: tokens of context per sequence.")
    var context: Int = 4096

    @Option(parsing: .unconditional, help: "With --layouts: sequences in the batch (default: one per rank, the smallest batch that gives every DP group of every layout a sequence).")
    var batch: Int?

    /// The batch the layouts are compared on: `--batch`, else one sequence per rank (a batch of
    /// one would leave all but one DP group idle and show DP attention saving nothing).
    var batchSize: Int { batch ?? ranks ?? 1 }

    @Option(parsing: .unconditional, help: "With --layouts: attention layers to count (weights, cache, FLOPs, bytes and time are per layer × this).")
    var layers: Int = 1

    @Option(parsing: .unconditional, help: "With --layouts: memory of one rank (e.g. 141GB, 80GiB), for the largest context × batch that fits.",
            transform: ByteSize.init(parsing:))
    var memoryPerRank: ByteSize?

    @Option(help: "With --layouts: write the bytes-per-rank-by-layout figure (SVG) here.")
    var figure: String?

    @Option(parsing: .unconditional, help: "Tokens: prefill of one sequence of T tokens, and decode of one token after T cached ones.")
    var tokens: Int = 128

    @Option(parsing: .unconditional, help: "Comma-separated sequence lengths of the prefill batch (overrides --tokens); decode uses the same contexts.",
            transform: IntList<Lengths>.init(parsing:))
    var seqs: IntList<Lengths>?

    @Option(help: "Project time on \(HardwareSpec.forms).", transform: HardwareSpec.init(parsing:))
    var hardware: HardwareSpec?

    @Option(help: "Measured rates for cpu-measured (JSON written by `mla-tp sweep-step --probe --out FILE`).")
    var rates: String?

    @Option(help: "Take the cpu-measured rates from a `mla-tp bench --phase both --json` report instead (sgemm, memcpy, raw allreduce).")
    var benchJson: String?

    @Flag(help: "Print the plan as one JSON document.")
    var json = false

    func validate() throws {
        if layouts != nil {
            guard let ranks else { throw ValidationError("--layouts needs --ranks N, the job's ranks (each layout's dp × tp must equal it)") }
            guard tp == nil else { throw ValidationError("--layouts compares layouts of --ranks — drop --tp") }
            try requireAtLeast(1, "--ranks", ranks, "the job's ranks")
            try requireAtMost(1 << 20, "--ranks", ranks, "plan a job of at most \(1 << 20) ranks")
            try requireAtLeast(1, "--context", context, "tokens of context per sequence")
            try requireAtLeast(1, "--batch", batchSize, "sequences in the batch")
            try requireAtLeast(1, "--layers", layers, "attention layers to count")
            // The plan counts each of the busiest group's sequences: bound the batch and context.
            if batch == nil, ranks > 1 << 20 {
                throw ValidationError("--ranks \(ranks) gives a default batch of \(ranks) sequences, more than \(1 << 20) — pass --batch, or fewer ranks")
            }
            guard batchSize <= 1 << 20, context <= MLAConfig.maxPositions else {
                throw ValidationError("--batch \(batchSize) and --context \(context) must be at most \(1 << 20) sequences and \(MLAConfig.maxPositions) tokens — plan a smaller batch and scale")
            }
        } else {
            guard let tp else { throw ValidationError("give --tp K (one tensor-parallel plan), or --ranks N --layouts … to compare layouts") }
            try requireAtLeast(1, "--tp", tp, "the tensor-parallel size to plan for")
        }
        try requireAtLeast(0, "--tokens", tokens, "the prefill tokens of one sequence")
        if benchJson != nil, let hardware, hardware != .cpuMeasured {
            throw ValidationError("--bench-json gives cpu-measured rates, not \(hardware)'s — drop --hardware \(hardware) or use --hardware cpu-measured")
        }
    }

    func run() throws {
        let (config, name) = try model.loadConfig()
        if let layouts, let ranks { return try compare(layouts, ranks: ranks, config: config, name: name) }
        let tp = self.tp ?? 1
        try config.validate(tp: tp, padHeads: true)
        let lengths = seqs?.values ?? [tokens]
        // Nothing here grows with the tokens but the counts: every one is checked, and a size
        // whose counts overflow is refused with the largest --tokens that fits.
        guard let total = try? Checked.sum(of: lengths, what: "") else {
            throw CapacityError.overflow(size: .init("--seqs", lengths.max() ?? 0, shown: seqs?.description), what: "tokens (the sum of the sequence lengths)", largest: nil)
        }
        let size = SizeBudget.Size(seqs != nil ? "--seqs (\(lengths.count) sequences, tokens in all)" : "--tokens", total)
        try SizeBudget.requireCounts(size, searchable: seqs == nil) { t throws(CountOverflow) in
            try SizeBudget.planCounts(lengths: seqs == nil ? [t] : lengths, config: config, tp: tp)
        }
        let hw: Hardware?
        if let benchJson {
            hw = try MeasuredRates.fromBench(benchJson, needLink: tp > 1).hardware
        } else {
            hw = try hardware?.hardware(ratesFile: rates, precision: model.choice.storage.activations) {
                try ChildJobs.probeRates(choice: model.choice, config: config, ranks: min(tp, ProcessInfo.processInfo.activeProcessorCount),
                                         tokens: max(total, 1), sequence: max(lengths.max() ?? 1, 1), context: lengths.max(),
                                         launcher: Runtime.launcher)
            }
        }
        let report = try PlanReport(config: config, model: name, tp: tp, gate: model.gate, sequenceLengths: lengths,
                                    hardware: hw.map { model.choice.holding($0, config: config) },
                                    precision: model.dtype, cacheDType: model.choice.kvCacheDType, quantization: model.choice.quantization)
        RankOutputShim.out(json ? try report.json() : report.text())
    }
}
