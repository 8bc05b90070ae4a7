import MLA
import TensorCore
import Testing

/// The rate probe's attention: the prefill's own kernel, counted as the forward counts it.
@Suite struct AttentionProbeTests {
    @Test func theProbeCountsTheKernelsFlopsForItsShape() throws {
        for (config, heads, tokens) in [(Presets.tiny, 4, 9), (Presets.deepseekV2Lite, 8, 256), (Presets.deepseekV3, 16, 100)] {
            let probe = try AttentionProbe(config: config, heads: heads, tokens: tokens, precision: .f32)
            let expected = try AttentionCounts.expandedFlops(heads: heads, dq: config.qkHeadDim, v: config.vHeadDim, nq: tokens, nk: tokens)
            #expect(probe.flops == expected && probe.heads == heads && probe.tokens == tokens)
        }
    }

    /// It runs in every precision a layer stores its scores in, and writes a finite output of
    /// `[T, heads·v]` each time (blocks of 64 queries and a tail, here).
    @Test func everyPrecisionRunsToAFiniteResult() throws {
        for precision in [Precision.f32, .bf16] {
            let probe = try AttentionProbe(config: Presets.tiny, heads: 2, tokens: 70, precision: precision)
            probe.run()
            probe.run()
            #expect(probe.lastOutput.count == 70 * 2 * Presets.tiny.vHeadDim && probe.lastOutput.allSatisfy(\.isFinite), "\(precision)")
            #expect(probe.lastOutput.contains { $0 != 0 }, "\(precision): the kernel wrote nothing")
        }
    }

    /// The absorbed probe streams its heads' W_UK/W_UV slice in the layer's precision and the
    /// cached rows, and attends every head.
    @Test func theAbsorbedProbeCountsTheBytesItStreams() {
        let c = Presets.tiny
        for precision in [Precision.f32, .bf16] {
            let probe = AbsorbedProbe(config: c, heads: 3, cached: 70, precision: precision)
            let slice = 3 * (c.qkNopeHeadDim + c.vHeadDim) * c.kvLoraRank
            #expect(probe.bytes == slice * precision.bytesPerElement + 70 * (c.kvLoraRank + c.qkRopeHeadDim) * 4, "\(precision)")
            probe.run()
            #expect(probe.lastOutput.count == 3 * c.vHeadDim && probe.lastOutput.allSatisfy(\.isFinite), "\(precision)")
            #expect(probe.lastOutput.contains { $0 != 0 }, "\(precision): the kernel wrote nothing")
        }
    }
}
