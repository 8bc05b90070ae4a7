import Foundation
@testable import MLA
import SafeTensors
import TensorCore
import TensorParallel
import Testing

/// Every gate form — element- or head-wise, separate or packed into the q projection — with every
/// activation and with the bias on or off, sharded column-parallel with the heads: the shards
/// recombine to the unsharded layer at tp 1, 2, 4 and 8.
@Suite struct GateFormTests {
    static let forms: [(granularity: String, placement: String)] = [("element", "separate"), ("head", "separate"),
                                                                   ("element", "packed"), ("head", "packed")]

    static func config(_ form: (granularity: String, placement: String), act: GateActivation, bias: Bool, qLora: Bool = true) -> MLAConfig {
        var c = Presets.tiny.withGate(granularity: form.granularity, placement: form.placement)
        c.gatedAttnAct = act.rawValue
        c.useBias = bias
        if !qLora { c.qLoraRank = nil }
        return c
    }

    /// The sum of every rank's partial o_proj product, plus the bias once.
    static func sharded(_ c: MLAConfig, tp: Int, gate: GateLayout = .column, x: Matrix, batch: Batch) throws -> Matrix {
        var sum = Matrix(rows: x.rows, cols: c.hiddenSize)
        var bias: [Float]?
        for r in 0..<tp {
            let layer = try MLAAttention(config: c, shard: Shard(rank: r, size: tp), gateLayout: gate, source: SeededWeights(seed: 5))
            let part = try layer.forwardPartial(x, batch: batch)
            for k in sum.storage.indices { sum.storage[k] += part.storage[k] }
            bias = layer.outputBias
        }
        if let bias { try sum.addRowBias(bias) }
        return sum
    }

    @Test(arguments: forms.indices, GateActivation.allCases)
    func everyFormRecombinesToTheUnshardedLayer(form: Int, act: GateActivation) throws {
        for bias in [true, false] {
            let c = Self.config(Self.forms[form], act: act, bias: bias, qLora: form % 2 == 0)
            let batch = try Batch(sequenceLengths: [7, 1, 12])
            let x = try seededInput(tokens: batch.tokenCount, hidden: c.hiddenSize, seed: 3)
            let whole = try MLAAttention(config: c, shard: .whole, source: SeededWeights(seed: 5)).forward(x, batch: batch, collectives: .local)
            for tp in [1, 2, 4, 8] {
                let cmp = try Comparison(try Self.sharded(c, tp: tp, x: x, batch: batch), reference: whole)
                #expect(cmp.relative < 1e-5, "\(Self.forms[form]) \(act) bias \(bias) tp=\(tp): relative \(cmp.relative)")
            }
        }
    }

    /// A packed q projection is read through the packing: stored concatenated and declared so, the
    /// layer equals the interleaved one; split the other way, it is silently different.
    @Test func packingOrderDecidesWhichRowsARankGets() throws {
        let inter = Self.config(("element", "packed"), act: .sigmoid, bias: false)
        var concat = inter
        concat.gatedAttnPacking = "concatenated"
        let batch = try Batch(sequenceLengths: [6, 5])
        let x = try seededInput(tokens: batch.tokenCount, hidden: inter.hiddenSize, seed: 3)
        // The same logical weights: write the interleaved layer's tensors, stored concatenated.
        let whole = try MLAAttention(config: concat, shard: .whole, source: SeededWeights(seed: 5))
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("packing-\(UUID().uuidString.prefix(6))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var writer = SafeTensorsWriter()
        for t in whole.namedTensors { try writer.add(t.name, floats: t.values, shape: t.shape) }
        try writer.write(to: dir.appendingPathComponent("model.safetensors").path)
        let reference = try whole.forward(x, batch: batch, collectives: .local)
        let read = try MLAAttention(config: concat, shard: .whole, source: try CheckpointWeights(path: dir.path, config: concat))
        #expect(try Comparison(try read.forward(x, batch: batch, collectives: .local), reference: reference).relative < 1e-6)
        for tp in [1, 2] {
            var sum = Matrix(rows: x.rows, cols: concat.hiddenSize)
            for r in 0..<tp {
                let layer = try MLAAttention(config: concat, shard: Shard(rank: r, size: tp), gateLayout: .packedAsInterleaved,
                                             source: try CheckpointWeights(path: dir.path, config: concat))
                let part = try layer.forwardPartial(x, batch: batch)
                for k in sum.storage.indices { sum.storage[k] += part.storage[k] }
            }
            #expect(try Comparison(sum, reference: reference).relative > 0.1, "split as interleaved at tp=\(tp): silently different")
        }
    }

    @Test func aGateTensorOfNoDeclaredShapeNamesTheForms() throws {
        let dir = Golden.dir("gate_head_separate_sigmoid_bias")
        var config = try MLAConfig.load(path: dir + "/config.json")
        config.gatedAttnGranularity = "element"
        let error = #expect(throws: GateShapeError.self) {
            try MLAAttention(config: config, shard: .whole, source: try CheckpointWeights(path: dir, config: config))
        }
        let text = error?.description ?? ""
        #expect(text.contains("[8, 64]") && text.contains("element-wise separate") && text.contains("[128, 64]") && text.contains("head-wise separate"), "\(text)")
        config.gatedAttnGranularity = "head"
        config.gatedAttnPlacement = "packed"
        #expect(throws: GateShapeError.self) { try MLAAttention(config: config, shard: .whole, source: try CheckpointWeights(path: dir, config: config)) }
    }

    @Test func unknownFormNamesAreConfigErrorsListingTheChoices() {
        for (key, bad) in [("gated_attn_granularity", "channel"), ("gated_attn_placement", "fused"), ("gated_attn_packing", "zigzag")] {
            var c = Presets.tiny
            switch key {
            case "gated_attn_granularity": c.gatedAttnGranularity = bad
            case "gated_attn_placement": c.gatedAttnPlacement = bad
            default: c.gatedAttnPacking = bad
            }
            #expect(throws: ConfigError.self) { try c.validate() }
            #expect((try? c.validate()) == nil)
        }
    }
}
