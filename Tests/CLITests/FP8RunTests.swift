import Foundation
import MLA
import Report
import SafeTensors
import Testing
import TestSupport

/// `--quantization fp8` under real mpirun: the fp8 golden case gives the bits of `--dtype bf16` on
/// the same checkpoint at every tp and stays within the golden bound against float64; seeded
/// presets run at every tp; and the weight bytes each rank holds are the plan's.
@Suite(.serialized, .tags(.mpirun), .skippedInFastLane) struct FP8RunTests {
    static let dir = Fixtures.golden("fp8_block")

    @Test(arguments: [1, 2, 4])
    func fp8GivesTheBitsOfBF16OnTheFP8GoldenCase(tp: Int) throws {
        let scratch = try Fixtures.scratch("fp8")
        defer { try? FileManager.default.removeItem(at: scratch) }
        var outputs: [Data] = []
        for flags in [["--dtype", "bf16"], ["--quantization", "fp8"]] {
            let out = scratch.appendingPathComponent("out\(outputs.count).safetensors").path
            let r = MPIJob.run(ranks: tp, ["run", "--model", Self.dir, "--input", Self.dir + "/input.safetensors", "--output", out, "--json"] + flags,
                               timeout: 90)
            #expect(r.status == 0, "\(flags) tp=\(tp): \(r)")
            outputs.append(try SafeTensorsFile(path: out).withRawBytes(of: "attn_output") { Data($0) })
        }
        #expect(outputs.count == 2 && outputs[0] == outputs[1], "tp=\(tp): the same output bits")
        try BF16RunTests.checkGolden("fp8_block", tp: tp, extra: ["--quantization", "fp8"])
    }

    /// Each rank's weight bytes, as run measures them, are the plan's (the busiest rank's is the
    /// plan's figure), and fp8 holds at most 0.55 of bf16's bytes on deepseek-v3's shapes (plan).
    @Test(arguments: [1, 2, 4, 8])
    func seededFP8RunsPassAndHoldThePlansBytes(tp: Int) throws {
        let r = MPIJob.run(ranks: tp, ["run", "--quantization", "fp8", "--tokens", "40", "--json"], timeout: 90)
        #expect(r.status == 0, "tp=\(tp): \(r)")
        let report = try r.decoded(RunReport.self)
        #expect(report.check?.pass == true && report.plan.quantization == .fp8)
        #expect(report.ranks.map(\.bytes).max() == report.plan.bytesPerRank, "\(report.ranks.map(\.bytes)) vs plan \(report.plan.bytesPerRank)")
        let plan = MPIJob.single(["plan", "--tp", "\(tp)", "--quantization", "fp8", "--json"], timeout: 30)
        #expect(plan.status == 0, "\(plan)")
        #expect(try plan.decoded(PlanReport.self).bytesPerRank == report.plan.bytesPerRank)
    }

    @Test func theFP8PlanOfDeepSeekV3HoldsAtMost055OfTheBF16Bytes() throws {
        for tp in [1, 2, 8] {
            let fp8 = try MPIJob.single(["plan", "--preset", "deepseek-v3", "--tp", "\(tp)", "--quantization", "fp8", "--json"], timeout: 30)
                .decoded(PlanReport.self).bytesPerRank
            let bf16 = try MPIJob.single(["plan", "--preset", "deepseek-v3", "--tp", "\(tp)", "--dtype", "bf16", "--json"], timeout: 30)
                .decoded(PlanReport.self).bytesPerRank
            #expect(Double(fp8) <= 0.55 * Double(bf16), "tp=\(tp): fp8 \(fp8) bytes, bf16 \(bf16)")
        }
    }
}
