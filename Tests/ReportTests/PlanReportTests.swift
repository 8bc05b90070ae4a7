import Foundation
import MLA
import Report
import TensorCore
import Testing

/// Reports are documents: built from counts, rendered as text, carried as JSON.
@Suite struct PlanReportTests {
    static func deepseekV3(tp: Int) throws -> PlanReport {
        try PlanReport(config: try Presets.config("deepseek-v3"), model: "deepseek-v3", tp: tp, gate: .column, sequenceLengths: [16],
                       hardware: nil)
    }

    @Test func textShowsTheReplicatedGateBesideItsColumnShard() throws {
        // The gate's W [H·v, hidden] = [16384, 7168] in f32 is 469.8 MB whole and 58.7 MB as one of 8 column shards.
        let text = try Self.deepseekV3(tp: 8).text()
        for needle in ["469.8 MB", "58.7 MB", "[16384, 7168]", "[2048, 7168]"] {
            #expect(text.contains(needle), "missing \(needle)")
        }
    }

    /// The cache is counted in the dtype asked for (auto: the activations'), every dtype shown beside it.
    @Test(arguments: [(nil, Precision.f32, 2304), (nil, .bf16, 1152), (KVCacheDType.fp8, .bf16, 656), (.bf16, .f32, 1152)])
    func kvCacheIsCountedInItsDType(cache: KVCacheDType?, precision: Precision, bytes: Int) throws {
        let report = try PlanReport(config: try Presets.config("deepseek-v3"), model: "deepseek-v3", tp: 8, gate: .column, sequenceLengths: [16],
                                    hardware: nil, precision: precision, cacheDType: cache)
        #expect(report.kvCache.bytesPerToken == bytes && report.kvCache.bytesAfterPrefill == 16 * bytes)
        #expect(report.kvCache.dtype == cache ?? KVCacheDType(activations: precision))
        #expect(report.text().contains("per token: f32 2.3 KB, bf16 1.2 KB, fp8 656 B"))
    }

    @Test func jsonRoundTripKeepsEveryField() throws {
        let report = try Self.deepseekV3(tp: 4)
        let json = try report.json()
        let back = try JSONDecoder().decode(PlanReport.self, from: Data(json.utf8))
        #expect(try back.json() == json)
        #expect(back.tp == 4 && back.model == "deepseek-v3" && back.gate == .column)
    }
}

/// The table helpers every text report uses.
@Suite struct FormatTests {
    @Test func sizesAndTimesUseTheirUnits() {
        #expect(Format.bytes(999) == "999 B" && Format.bytes(2_300) == "2.3 KB" && Format.bytes(469_762_048) == "469.8 MB"
                && Format.bytes(3_210_000_000) == "3.21 GB")
        #expect(Format.seconds(1.5) == "1.500 s" && Format.seconds(0.0012) == "1.200 ms" && Format.seconds(0.0000025) == "2.50 µs")
    }

    @Test func tableAlignsColumnsUnderTheirHeader() {
        let t = Format.table(["a", "long"], [["xyz", "1"], ["b", "22"]])
        #expect(t == "a    long\n---  ----\nxyz  1\nb    22")
    }
}
