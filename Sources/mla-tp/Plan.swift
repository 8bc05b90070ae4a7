import ArgumentParser
import Foundation
import Measure
import MLA
import Report
import TensorCore

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
            --hardware takes \(HardwareSpec.forms).
            cpu-measured measures this machine's sgemm (at the prefill's [T, hidden] shape), copy and MPI \
            allreduce rates with a short `mpirun -n min(tp, cores) mla-tp sweep-step --probe` (or reads them \
            from --rates, or from a bench report with --bench-json).
            """)

    @OptionGroup var model: ModelOptions

    @Option(parsing: .unconditional, help: "Tensor-parallel size to plan for.")
    var tp: Int

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
        try requireAtLeast(1, "--tp", tp, "the tensor-parallel size to plan for")
        try requireAtLeast(0, "--tokens", tokens, "the prefill tokens of one sequence")
        if benchJson != nil, let hardware, hardware != .cpuMeasured {
            throw ValidationError("--bench-json gives cpu-measured rates, not \(hardware)'s — drop --hardware \(hardware) or use --hardware cpu-measured")
        }
    }

    func run() throws {
        let (config, name) = try model.loadConfig()
        try config.validate(tp: tp)
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
            hw = try hardware?.hardware(ratesFile: rates) {
                try MeasuredRates.probe(Runtime.launcher, ranks: min(tp, ProcessInfo.processInfo.activeProcessorCount),
                                        shape: .forward(tokens: total, hidden: config.hiddenSize),
                                        allReduceBytes: ShardingPlan.allReduceBytes(tokens: max(total, 1), config: config))
            }
        }
        let report = try PlanReport(config: config, model: name, tp: tp, gate: model.gate, sequenceLengths: lengths, hardware: hw)
        RankOutputShim.out(json ? try report.json() : report.text())
    }
}
