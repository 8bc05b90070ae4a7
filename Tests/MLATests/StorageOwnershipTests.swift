@testable import MLA
import TensorCore
import TensorParallel
import Testing

/// The layer's numeric format is chosen once, by the storage it is built with: every projection
/// holds its weight in it, and the norms, both attention kernels and every stage's rounding
/// follow from it — no second precision to keep in step.
@Suite struct StorageOwnershipTests {
    static var source: SeededWeights { SeededWeights(seed: 5) }

    @Test(arguments: [Precision.f32, .bf16])
    func everyPartOfTheLayerTakesItsPrecisionFromTheOneStorage(precision: Precision) throws {
        let storage = precision.storage
        for config in [Presets.tiny, Presets.tiny.withGate(placement: "packed")] {
            let layer = try MLAAttention(config: config, shard: Shard(rank: 1, size: 2), source: Self.source, storage: storage)
            #expect(layer.precision == precision)
            #expect(layer.layers.allSatisfy { ObjectIdentifier(type(of: $0.storage)) == ObjectIdentifier(storage) && $0.precision == precision })
            #expect(layer.kvANorm.precision == precision && layer.oProj.bias.map { $0.precision == precision } != false)
            #expect(layer.kernel.scaling.precision == precision && layer.absorbed.precision == precision)
            #expect(layer.kernel.scaling.scale == layer.absorbed.scale)
            // Forward-only projections in the order the storage's kernel prefers; kv_a and kv_b are read as [out, in].
            #expect(layer.oProj.order == storage.forwardOrder && layer.down.kvA.layer.order == .outIn && layer.kvB.order == .outIn)
        }
    }

    @Test func aLayerBuiltFromADTypeIsTheLayerBuiltFromItsStorage() throws {
        let c = Presets.tiny, batch = try Batch(sequenceLengths: [5, 3])
        let x = try Matrix(rows: batch.tokenCount, cols: c.hiddenSize, values: SeededInit.fill(
            name: "x", seed: 2, rows: 0..<batch.tokenCount, cols: 0..<c.hiddenSize, globalCols: c.hiddenSize, std: 1))
        let byDType = try MLAAttention(config: c, shard: .whole, source: Self.source, precision: .bf16)
        let byStorage = try MLAAttention(config: c, shard: .whole, source: Self.source, storage: BF16Storage.self)
        let f32 = try MLAAttention(config: c, shard: .whole, source: Self.source, storage: F32Storage.self)
        let y = try byDType.forward(x, batch: batch, collectives: .local)
        #expect(y == (try byStorage.forward(x, batch: batch, collectives: .local)))
        #expect(y != (try f32.forward(x, batch: batch, collectives: .local)), "bf16 rounds where f32 does not")
        #expect(y.storage.allSatisfy { BFloat16($0).float == $0 }, "a bf16 layer's output holds bf16 values")
    }
}
