import Foundation
import Measure
import MLA
import Report
import Testing
import TestSupport

/// bench, plan and sweep with `--dtype bf16`: which kernel ran, the bf16 targets (n/a without
/// native bf16, never PASS), bytes at 2 per element with the same FLOPs, and the sweep's check columns.
@Suite(.serialized, .tags(.mpirun), .skippedInFastLane) struct BF16ReportTests {
    /// Whether this CPU runs bf16 natively (then oneDNN's bf16 matmul is the fast path).
    static let nativeBF16: Bool = {
        let info = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        return info.contains("avx512_bf16") || info.contains("amx_bf16")
    }()

    @Test func benchInBF16NamesTheKernelsAndJudgesTheBF16TargetsOnlyWithNativeBF16() throws {
        let r = MPIJob.run(ranks: 2, ["bench", "--dtype", "bf16", "--tokens", "48", "--repeat", "2", "--warmup", "0",
                                      "--phase", "both", "--copy-mib", "8", "--json"], timeout: 120)
        #expect(r.status == 0, "\(r)")
        let doc = try r.decoded(BenchReport.self)
        #expect(doc.dtype == .bf16 && doc.allReduceDType == .bf16 && doc.oneDNNBF16 != nil)
        for rank in doc.ranks {
            for phase in [rank.prefill, rank.decode] {
                let names = Set(phase?.kernels?.map(\.projection) ?? [])
                #expect(names.isSuperset(of: ["q_a_proj", "q_b_proj", "kv_a_proj_with_mqa", "kv_b_proj", "gate", "o_proj"]), "\(names)")
            }
            #expect(rank.prefill?.sgemmKernel != nil && rank.prefill?.referenceProjection == "gate")
        }
        let bf16Targets = doc.targets.filter { ["gemm-efficiency", "prefill-vs-torch-bf16", "decode-bandwidth", "memory"].contains($0.name) }
        #expect(bf16Targets.count == 5)
        for t in bf16Targets {
            if Self.nativeBF16 {
                #expect(t.notApplicable == nil || t.name == "prefill-vs-torch-bf16", "\(t.name): \(t.verdict)")
            } else {
                #expect(!t.pass && t.verdict.hasPrefix("n/a (no native bf16: "), "\(t.name): \(t.verdict)")
            }
        }
        let text = MPIJob.single(["bench", "--from-json", try Self.save(r.stdout)], timeout: 30)
        #expect(text.status == 0 && text.stdout.contains("Kernels (rank 0): q_a_proj "), "\(text)")
        if !Self.nativeBF16 { #expect(text.stdout.contains("n/a (no native bf16: "), "\(text)") }
    }

    @Test func aF32BenchKeepsItsTargetsJudged() throws {
        let r = MPIJob.run(ranks: 1, ["bench", "--tokens", "32", "--repeat", "1", "--warmup", "0", "--json"], timeout: 60)
        #expect(r.status == 0, "\(r)")
        let doc = try r.decoded(BenchReport.self)
        #expect(doc.dtype == nil && doc.targets.allSatisfy { $0.notApplicable == nil })
        #expect(doc.ranks[0].prefill?.sgemmKernel?.hasPrefix("OpenBLAS") == true, "the gate [in, out] runs on OpenBLAS: \(doc.ranks[0].prefill?.sgemmKernel ?? "")")
    }

    @Test func planInBF16CountsTwoBytesPerElementAndTheSameFlops() throws {
        let args = ["plan", "--preset", "deepseek-v3", "--tp", "8", "--tokens", "256", "--json"]
        let f32 = MPIJob.single(args, timeout: 30), bf16 = MPIJob.single(args + ["--dtype", "bf16"], timeout: 30)
        #expect(f32.status == 0 && bf16.status == 0, "\(bf16)")
        let a = try f32.decoded(PlanReport.self), b = try bf16.decoded(PlanReport.self)
        #expect(2 * b.bytesPerRank == a.bytesPerRank && 2 * b.replicatedBytes == a.replicatedBytes)
        #expect(b.prefill.totalFlops == a.prefill.totalFlops && 2 * b.prefill.bytes == a.prefill.bytes)
        #expect(2 * b.kvCache.bytesPerToken == a.kvCache.bytesPerToken && 2 * b.collective.prefillBytes == a.collective.prefillBytes)
        #expect(b.dtype == .bf16 && a.dtype == nil)
        let text = MPIJob.single(["plan", "--preset", "deepseek-v3", "--tp", "8", "--dtype", "bf16"], timeout: 30)
        #expect(text.stdout.contains("Weights (bf16, per rank)") && text.stdout.contains("bf16 operands"), "\(text)")
    }

    @Test func sweepInBF16AddsTheCheckColumnsPerTp() throws {
        let out = try Fixtures.scratch("bf16sweep")
        let r = MPIJob.single(["sweep", "--preset", "tiny", "--tp", "1,2", "--dtype", "bf16", "--tokens", "16", "--repeats", "1",
                               "--check-tokens", "8", "--out", out.path], timeout: 300)
        #expect(r.status == 0, "\(r)")
        #expect(r.stdout.contains("The check in bf16") && r.stdout.contains("bit-identical to tp=1"), "\(r.stdout)")
        let doc = try MeasureError.decode(SweepReport.self, path: out.appendingPathComponent("sweep.json").path, what: "sweep", remedy: "")
        #expect(doc.dtype == .bf16 && doc.rows.count == 2)
        #expect(doc.rows.allSatisfy { $0.bitIdentical != nil && ($0.checkF32Relative ?? 1) < 0x1p-5 && ($0.checkF32Relative ?? 0) > 1e-4 })
        #expect(doc.rows.first?.bitIdentical == true, "tp = 1 is the unsharded bf16 forward itself")
    }

    static func save(_ text: String) throws -> String {
        let file = try Fixtures.scratch("bench").appendingPathComponent("bench.json")
        try text.write(to: file, atomically: true, encoding: .utf8)
        return file.path
    }
}
