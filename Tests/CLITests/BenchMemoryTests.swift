import Foundation
import MLA
import Measure
import Planner
import Report
import TensorCore
import Testing
import TestSupport

/// What bench's memory reads: the decode phase is a decode instance's (the prompt's prefill
/// buffers freed before the steps), and an fp8 layer's prefill reference holds one dequantized
/// tile, never a bf16 copy of the whole weight.
@Suite(.serialized, .tags(.mpirun), .skippedInFastLane) struct BenchMemoryTests {
    /// The decode phase's activations are the step's B tokens' workspace plus the cache, not the
    /// B·C-token prompt's, in the layer's precision.
    @Test(arguments: [("f32", Precision.f32), ("bf16", Precision.bf16)])
    func decodeMemoryCountsTheStepNotThePrompt(dtype: String, precision: Precision) throws {
        let tp = 2, batch = 2
        let r = MPIJob.run(ranks: tp, ["bench", "--preset", "tiny", "--phase", "decode", "--tokens", "70", "--batch", "\(batch)",
                                       "--dtype", dtype, "--repeat", "1", "--json"], timeout: 120)
        #expect(r.status == 0, "\(r)")
        let doc = try r.decoded(BenchReport.self)
        let step = try SizeBudget.activationBytes(tokens: batch, config: Presets.tiny, tp: tp, precision: precision)
        let prompt = try SizeBudget.activationBytes(tokens: batch * 70, config: Presets.tiny, tp: tp, precision: precision)
        for (i, rank) in doc.ranks.enumerated() {
            let d = try #require(rank.decode)
            // The cache reported at the end holds contextLast + 1 tokens per sequence; when memory
            // was read it held contextFirst.
            let cache = try #require(d.cacheBytes), first = try #require(d.contextFirst), last = try #require(d.contextLast)
            #expect((d.memory.activationBytes - step) * (last + 1) == cache * first,
                    "rank \(i): \(d.memory.activationBytes) = step \(step) + cache of \(first) tokens (\(cache) at \(last + 1))")
            #expect(d.memory.activationBytes < prompt, "rank \(i)")
        }
    }

    /// deepseek-v2-lite widened to hidden 4096: q_proj `[3072, 4096]` is 24 MiB in bf16, three
    /// tiles of the fp8 route; the reference multiplies the first (1024 rows), not all of it.
    @Test func theFP8ReferenceMultipliesOneTileNotAWholeCopy() throws {
        let r = MPIJob.run(ranks: 1, ["bench", "--preset", "deepseek-v2-lite", "--set", "hidden_size=4096", "--quantization", "fp8",
                                      "--phase", "prefill", "--tokens", "16", "--repeat", "1", "--json"], timeout: 120)
        #expect(r.status == 0, "\(r)")
        let doc = try r.decoded(BenchReport.self)
        let p = try #require(doc.ranks.first?.prefill)
        #expect(p.sgemmShape == [16, 1024, 4096] && p.sgemmWeightTile == true, "\(String(describing: p.sgemmShape))")
        let bf16 = MPIJob.run(ranks: 1, ["bench", "--preset", "deepseek-v2-lite", "--set", "hidden_size=4096", "--dtype", "bf16",
                                         "--phase", "prefill", "--tokens", "16", "--repeat", "1", "--json"], timeout: 120)
        let whole = try bf16.decoded(BenchReport.self).ranks.first?.prefill
        #expect(whole?.sgemmShape == [16, 3072, 4096] && whole?.sgemmWeightTile == nil, "bf16 shares the layer's whole weight")
        let text = MPIJob.run(ranks: 1, ["bench", "--preset", "deepseek-v2-lite", "--set", "hidden_size=4096", "--quantization", "fp8",
                                         "--phase", "prefill", "--tokens", "16", "--repeat", "1"], timeout: 120)
        #expect(text.stdout.contains("W [1024, 4096] (one tile of the layer's largest hidden-wide weight"), "\(text)")
    }

    /// `plan` counts the activations bench reads on the ranks: a prefill's, and a decode step's
    /// beside the cache, for every activation precision and cache dtype (counters, not timings).
    @Test(arguments: [["--dtype", "f32"], ["--dtype", "bf16"], ["--quantization", "fp8"], ["--dtype", "bf16", "--kv-cache-dtype", "fp8"]])
    func planCountsTheActivationsBenchReads(flags: [String]) throws {
        let tp = 2, batch = 3, tokens = 40
        let r = MPIJob.run(ranks: tp, ["bench", "--preset", "tiny", "--phase", "both", "--tokens", "\(tokens)", "--batch", "\(batch)",
                                       "--repeat", "1", "--json"] + flags, timeout: 120)
        #expect(r.status == 0, "\(r)")
        let bench = try r.decoded(BenchReport.self)
        let prefill = try #require(bench.ranks.first?.prefill), decode = try #require(bench.ranks.first?.decode)
        let plan = MPIJob.single(["plan", "--preset", "tiny", "--tp", "\(tp)", "--tokens", "\(tokens)", "--json"] + flags, timeout: 30)
        #expect(try plan.decoded(PlanReport.self).activations.prefillBytes == prefill.memory.activationBytes, "\(flags)")
        // Memory is read when the decode's sequences hold contextFirst tokens each.
        let context = try #require(decode.contextFirst)
        let steps = MPIJob.single(["plan", "--preset", "tiny", "--tp", "\(tp)", "--seqs", Array(repeating: "\(context)", count: batch).joined(separator: ","),
                                   "--json"] + flags, timeout: 30)
        #expect(try steps.decoded(PlanReport.self).activations.decodeStepBytes == decode.memory.activationBytes, "\(flags)")
    }
}
