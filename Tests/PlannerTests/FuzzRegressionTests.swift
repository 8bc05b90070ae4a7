import Foundation
import MLA
import Planner
import Testing

/// Inputs the config fuzzer found (Fuzz/crashes): each passed validation before and then
/// overflowed ShardingPlan, exhausted memory in Rope, or hung building an error message.
/// Validation now bounds every dimension, so each is rejected promptly with a clear message.
@Suite struct FuzzRegressionTests {
    static let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fuzz/crashes")

    static var files: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).filter { $0.hasPrefix("config-") }.sorted()
    }

    @Test func everyReproducerIsPresent() {
        #expect(Self.files.count >= 5, "found \(Self.files)")
    }

    @Test(arguments: files)
    func fuzzFoundConfigIsRejectedOrHandled(file: String) throws {
        let data = try Data(contentsOf: Self.dir.appendingPathComponent(file))
        guard let config = try? MLAConfig.decode(json: data) else { return }   // rejected by the parser: fine
        for tp in [1, 2, 3, 4, 8] {
            do {
                try config.validate(tp: tp)
                _ = Rope(config: config)
                _ = ShardingPlan(config: config, tp: tp, gate: .column)
            } catch let e as ConfigError {
                #expect(e.description.count < 400, "a short message: \(e)")
            }
        }
    }

    @Test func hugeDimensionsAreRejectedNamingTheKeyAndLimit() {
        var c = Presets.tiny
        c.hiddenSize = 1 << 62
        #expect(throws: ConfigError.tooLarge(key: "hidden_size", value: 1 << 62, limit: MLAConfig.maxDimension)) { try c.validate() }
        c = Presets.tiny
        c.numAttentionHeads = (1 << 40) + 1
        #expect(throws: ConfigError.tooLarge(key: "num_attention_heads", value: (1 << 40) + 1, limit: MLAConfig.maxHeads)) { try c.validate(tp: 2) }
    }
}
