import Foundation
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
        for name in ["time-vs-projection.svg", "timeline-tp1.svg", "timeline-tp2.svg"] {
            let text = try Self.subtitles(dir, name)
            #expect(text.contains(precision + ",") && text.contains(detail) && text.contains("gate column"), "\(name): \(text)")
            #expect(precision == "f32" || !text.contains("f32)") && !text.contains("f32;"), "\(name) names f32: \(text)")
        }
        let bytes = try Self.subtitles(dir, "bytes-per-rank.svg")
        let held = precision.replacingOccurrences(of: "invariant mode, ", with: "")       // the bytes do not depend on the mode
        #expect(bytes.contains("sharding plan (\(held)"), "\(bytes)")
    }
}
