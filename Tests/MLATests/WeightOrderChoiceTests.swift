@testable import MLA
import TensorParallel
import Testing

/// Which order each projection is kept in is a speed decision (docs/performance.md): the
/// forward-only projections `[in, out]` for prefill's packing, kv_a `[out, in]` so a decode
/// token streams its narrow weight as dot products, kv_b `[out, in]` for the decode kernels.
@Suite struct WeightOrderChoiceTests {
    @Test func narrowKvAAndKvBStayOutInTheOthersInOut() throws {
        let layer = try MLAAttention(config: Presets.tiny, shard: .whole, source: SeededWeights(seed: 1))
        #expect(layer.down.kvA.layer.order == .outIn)
        #expect(layer.kvB.order == .outIn)
        #expect(layer.oProj.order == .inOut)
        if case let .lora(_, qB) = layer.qPath, let qA = layer.down.qA?.layer { #expect(qA.order == .inOut && qB.order == .inOut) } else { Issue.record("tiny uses q LoRA") }
        if case let .column(g) = layer.gate { #expect(g.order == .inOut) } else { Issue.record("tiny is gated, column layout") }
    }
}
