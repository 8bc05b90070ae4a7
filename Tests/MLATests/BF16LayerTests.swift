import Foundation
@testable import MLA
import TensorCore
import TensorParallel
import Testing

/// The MLA layer in bf16: half the weight bytes for every gate form and tp, a bf16 checkpoint
/// read as stored (never widened), every projection kept `[out, in]`, and the serving paths
/// (absorbed and naive decode, chunked prefill) within a bf16 forward's distance of the plain one.
@Suite struct BF16LayerTests {
    let source = SeededWeights(seed: 11)

    static let configs: [MLAConfig] = {
        var noLora = Presets.tiny; noLora.qLoraRank = nil; noLora.gatedAttnAct = "scaled_softsign"
        var biased = Presets.tiny; biased.attentionBias = true; biased.useBias = true
        return [Presets.tiny, noLora, biased] + [("head", "separate"), ("element", "packed"), ("head", "packed")].map {
            Presets.tiny.withGate(granularity: $0.0, placement: $0.1)
        }
    }()

    @Test(arguments: configs.indices, [1, 2, 4])
    func bf16HoldsHalfTheBytesOfF32(config: Int, tp: Int) throws {
        let c = Self.configs[config]
        let f32 = try MLAAttention(config: c, shard: Shard(rank: tp - 1, size: tp), source: source)
        let bf16 = try MLAAttention(config: c, shard: Shard(rank: tp - 1, size: tp), source: source, precision: .bf16)
        #expect(bf16.weightBytes * 2 == f32.weightBytes)
        #expect(bf16.layers.allSatisfy { $0.weight.precision == .bf16 && $0.order == .outIn }, "bf16 weights are kept [out, in]")
    }

    @Test func aBF16CheckpointIsReadAsStoredNotWidened() throws {
        let dir = Golden.dir("hf_save_pretrained")                       // BF16 tensors written by HF
        let config = try MLAConfig.load(path: dir + "/config.json")
        let bf16 = try CheckpointWeights(path: dir, config: config), f32 = try CheckpointWeights(path: dir, config: config)
        let held = try MLAAttention(config: config, shard: .whole, source: bf16, precision: .bf16)
        let widened = try MLAAttention(config: config, shard: .whole, source: f32)
        #expect(bf16.bytesRead == held.weightBytes, "every byte read is held: \(bf16.bytesRead) read, \(held.weightBytes) held")
        #expect(f32.bytesRead == bf16.bytesRead && widened.weightBytes == 2 * held.weightBytes)
        for (a, b) in zip(held.namedTensors, widened.namedTensors) { #expect(a.values == b.values, "\(a.name): the same values") }
    }

    /// A bf16 prefill keeps the expanded keys and values (the largest activation) in 2 bytes, with
    /// at most one block of `expandBlockRows` f32 rows beside them; an f32 layer keeps them in f32.
    /// Releasing the buffers empties them, and the next forward gives the same bits.
    @Test(arguments: [5, 64, 150])
    func aBF16PrefillHoldsItsExpandedKeysAndValuesInTwoBytes(tokens T: Int) throws {
        let c = Presets.tiny
        let batch = try Batch(sequenceLengths: [T])
        let x = try Matrix(rows: T, cols: c.hiddenSize, values: SeededInit.fill(
            name: "x", seed: 3, rows: 0..<T, cols: 0..<c.hiddenSize, globalCols: c.hiddenSize, std: 1))
        let bf16 = try MLAAttention(config: c, shard: .whole, source: source, precision: .bf16)
        let out = try bf16.forward(x, batch: batch, collectives: .local)
        let width = bf16.kvB.localOut
        #expect(bf16.workspace.kv16.rows == T && bf16.workspace.kv16.bytes == 2 * T * width)
        #expect(bf16.workspace.kv.storage.capacity == 0, "no f32 copy of the expanded keys and values")
        #expect(bf16.workspace.kvBlock.rows == min(MLAAttention.expandBlockRows, T - (T - 1) / MLAAttention.expandBlockRows * MLAAttention.expandBlockRows))
        #expect(bf16.workspace.kvBlock.storage.capacity <= MLAAttention.expandBlockRows * width + 64)

        let f32 = try MLAAttention(config: c, shard: .whole, source: source)
        _ = try f32.forward(x, batch: batch, collectives: .local)
        #expect(f32.workspace.kv.rows == T && f32.workspace.kv16.count == 0 && f32.workspace.kvBlock.count == 0)

        bf16.releaseBuffers()
        #expect(bf16.workspace.kv16.storage.capacity == 0 && bf16.workspace.q.storage.capacity == 0)
        let again = try bf16.forward(x, batch: batch, collectives: .local)
        #expect(again.storage.map(\.bitPattern) == out.storage.map(\.bitPattern))
    }

    @Test(arguments: DecodePath.allCases)
    func servingInBF16StaysWithinABF16StepOfThePlainForward(path: DecodePath) throws {
        let c = Presets.tiny
        let layer = try MLAAttention(config: c, shard: .whole, source: source, precision: .bf16)
        let batch = try Batch(sequenceLengths: [7, 1, 12])
        let x = try Matrix(rows: batch.tokenCount, cols: c.hiddenSize, values: SeededInit.fill(
            name: "x", seed: 11, rows: 0..<batch.tokenCount, cols: 0..<c.hiddenSize, globalCols: c.hiddenSize, std: 1))
        let full = try layer.forward(x, batch: batch, collectives: .local)
        let f32 = try MLAAttention(config: c, shard: .whole, source: source).forward(x, batch: batch, collectives: .local)
        for (d, chunk) in [(3, nil), (2, 4)] as [(Int, Int?)] {
            let served = try layer.serve(x, batch: batch, schedule: try ServingSchedule(batch: batch, decodeSteps: d, prefillChunk: chunk),
                                         decode: path, collectives: .local)
            let vsBF16 = try Comparison(served, reference: full).relative, vsF32 = try Comparison(served, reference: f32).relative
            #expect(vsBF16 < 0x1p-5 && vsF32 < 0x1p-5 && vsF32 > 1e-4,          // the check's bf16 tolerance (TPCheck)
                    "\(path) D=\(d) chunk=\(String(describing: chunk)): \(vsBF16) from the bf16 forward, \(vsF32) from f32")
            #expect(served.storage.allSatisfy { BFloat16($0).float == $0 })
        }
        #expect(layer.counters.kernels.contains { $0.projection == "kv_b_proj" })
    }
}
