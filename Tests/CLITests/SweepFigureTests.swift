import Foundation
import Measure
import Report
import Testing
import TestSupport

/// A sweep's figures say what they show: the precision, the weights' quantization, the kernels
/// that ran the GEMMs and the gate layout, in every figure's subtitle; and the bytes figure counts
/// the weights in the precision the sweep ran (a bf16 sweep's figure never says f32).
@Suite(.serialized, .tags(.mpirun), .skippedInFastLane) struct SweepFigureTests {
    static func subtitles(_ dir: URL, _ name: String) throws -> String {
        let svg = try String(contentsOf: dir.appendingPathComponent(name), encoding: .utf8)
        // The subtitle is the second text line of each figure (after its title).
        return svg.components(separatedBy: "<text").dropFirst().prefix(2).joined(separator: " ")
    }

    @Test(arguments: [(["--dtype", "bf16"], "bf16", "bf16"), (["--quantization", "fp8"], "bf16 activations, fp8 weights", "fp8 weights"),
                      ([], "f32", "OpenBLAS sgemm"), (["--invariant"], "invariant mode, f32", "fixed-order kernels")])
    func everyFigureNamesThePrecisionAndKernelsItShows(flags: [String], precision: String, detail: String) throws {
        let dir = try Fixtures.scratch("sweepfig")
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = MPIJob.single(["sweep", "--preset", "tiny", "--tp", "1,2", "--repeat", "1", "--out", dir.path] + flags, timeout: 120)
        #expect(r.status == 0, "\(r)")
        // The printed rates name the GEMM the rows are projected at, not the sgemm in a bf16 sweep.
        let gemm = flags.contains("--invariant") ? "fixed-order product" : precision.contains("bf16") ? "bf16 GEMM (" : "sgemm "
        let rateLines = r.stdout.split(separator: "\n").filter { $0.hasPrefix("rates (probe") }
        #expect(!rateLines.isEmpty && rateLines.allSatisfy { $0.contains("measured here: " + gemm) }, "\(rateLines)")
        for name in ["time-vs-projection.svg", "timeline-tp1.svg", "timeline-tp2.svg"] {
            let text = try Self.subtitles(dir, name)
            #expect(text.contains(precision + ",") && text.contains(detail) && text.contains("gate column"), "\(name): \(text)")
            #expect(precision == "f32" || !text.contains("f32)") && !text.contains("f32;"), "\(name) names f32: \(text)")
        }
        // Every row projected at the rate of the kernel its GEMMs ran on: bf16 layers (and fp8
        // weights, multiplied in bf16) at the probe's bf16 product, f32 at its sgemm.
        let doc = try JSONDecoder().decode(SweepReport.self, from: Data(contentsOf: dir.appendingPathComponent("sweep.json")))
        // Under --invariant every product, attention's too, at the probe's fixed-order product.
        let invariant = flags.contains("--invariant")
        for row in doc.rows {
            let rates = try #require(doc.rates.first { $0.ranks == min(row.tp, $0.cores) } ?? doc.rates.first)
            let rate = try #require(invariant ? rates.fixedOrderGemmFlopsPerSecond
                                    : precision.contains("bf16") ? rates.bf16GemmFlopsPerSecond : rates.sgemmFlopsPerSecond)
            #expect(invariant == (rates.fixedOrderPrecision != nil), "the fixed-order product is probed for invariant sweeps only")
            let share = rates.hardware.share(tp: row.tp)
            // Memory-bound stages stream at the rate of the decode's product on weights held as the sweep holds them.
            let format = flags.contains("fp8") ? "fp8" : flags.contains("bf16") ? "bf16" : "f32"
            #expect(rates.decodeStreamFormat == format && row.projected.stages.allSatisfy { $0.bound == .compute || abs($0.seconds
                    - Double($0.bytes) / ((rates.decodeStreamBytesPerSecond ?? 0) * share)) <= 1e-9 * $0.seconds }, "tp\(row.tp) \(format)")
            // The expanded attention at the probe's attention kernel's rate (timed in the sweep's precision).
            let attention = try #require(invariant ? rate : rates.attentionFlopsPerSecond, "the probe timed no attention kernel")
            for stage in row.projected.stages where stage.bound == .compute {
                let r = stage.name == "attention" ? attention : rate
                #expect(abs(stage.seconds - Double(stage.flops) / (r * share)) <= 1e-9 * stage.seconds, "tp\(row.tp) \(stage.name)")
            }
        }
        let bytes = try Self.subtitles(dir, "bytes-per-rank.svg")
        let held = precision.replacingOccurrences(of: "invariant mode, ", with: "")       // the bytes do not depend on the mode
        #expect(bytes.contains("sharding plan (\(held)"), "\(bytes)")
    }
}
