import MLA
import Planner
import TensorParallel
import Testing

/// Each stage is projected with the rate and the bytes of what it runs on: the attention kernel's
/// own rate, fp8 weights at one byte (and a GPU's FP8 rate), the cache at its dtype's bytes, and
/// a layout's ranks sharing the cores. Counters and rates only, no timings.
@Suite struct KernelProjectionTests {
    static let cpu = Hardware(name: "test", flopsPerSecond: 100e9, memoryBytesPerSecond: 10e9, linkBytesPerSecond: 2e9,
                              linkLatencySeconds: 1e-6, bytesPerElement: 2, source: "test")

    @Test func theAttentionStageTakesTheAttentionKernelsRateNotTheGemms() throws {
        let c = Presets.deepseekV2Lite
        let cost = try FlopModel.prefill(config: c, tp: 2, gate: .column, sequenceLengths: [256, 256])
        var hw = Self.cpu
        let plain = Projection(cost: cost, tokens: 512, config: c, tp: 2, hardware: hw)
        hw.attentionFlopsPerSecond = 25e9
        let slowed = Projection(cost: cost, tokens: 512, config: c, tp: 2, hardware: hw)
        let a = try #require(slowed.stages.first { $0.name == "attention" }), a0 = try #require(plain.stages.first { $0.name == "attention" })
        #expect(a.bound == .compute && abs(a.seconds - Double(a.flops) / 25e9) < 1e-12 && abs(a.seconds / a0.seconds - 4) < 1e-9)
        // Every other stage keeps the GEMM's rate.
        for (s, s0) in zip(slowed.stages, plain.stages) where s.name != "attention" { #expect(s == s0, "\(s.name)") }
    }

    /// Every way the model builds a step marks each attention stage with the kernel it runs on,
    /// and the projection reads that mark, not the stage's name: projections carry none.
    @Test func everyAttentionStageNamesItsKernelAndTheProjectionReadsIt() throws {
        let c = Presets.deepseekV2Lite
        let costs: [(String, FlopModel.Cost)] = [
            ("prefill", try FlopModel.prefill(config: c, tp: 2, gate: .column, sequenceLengths: [64, 32])),
            ("decode naive", try FlopModel.decode(config: c, tp: 2, gate: .column, contexts: [64], path: .naive)),
            ("decode absorbed", try FlopModel.decode(config: c, tp: 2, gate: .column, contexts: [64], path: .absorbed)),
            ("serving, chunked prefill", try FlopModel.servingStep(config: c, tp: 2, gate: .column, newTokens: [16, 1], cached: [32, 64],
                                                                   path: .absorbed, dcp: TokenShare(index: 0, count: 1))),
            ("serving, DCP", try FlopModel.servingStep(config: c, tp: 2, gate: .column, newTokens: [1, 1], cached: [64, 64],
                                                       path: .absorbed, dcp: TokenShare(index: 0, count: 2))),
        ]
        for (what, cost) in costs {
            for s in cost.stages {
                let want: FlopModel.Kernel? = s.name == "attention" ? .expandedAttention : s.name == "attention (absorbed)" ? .absorbedDecode : nil
                #expect(s.kernel == want && (s.kind == .attention) == (want != nil), "\(what): \(s.name)")
            }
            var hw = Self.cpu
            (hw.attentionFlopsPerSecond, hw.absorbedBytesPerSecond) = (1e9, 0.5e9)
            let projected = Projection(cost: cost, tokens: 1, config: c, tp: 2, hardware: hw)
            for (s, t) in zip(cost.stages, projected.stages) {
                let bytes = Double(t.bytes), flops = Double(t.flops)
                let want = switch s.kernel {
                case .expandedAttention: max(flops / 1e9, bytes / 10e9)
                case .absorbedDecode: max(flops / 100e9, bytes / 0.5e9)
                case nil: max(flops / 100e9, bytes / 10e9)
                }
                #expect(abs(t.seconds - want) <= 1e-12 * want, "\(what): \(s.name)")
            }
        }
    }

    @Test func theAbsorbedDecodeStreamsAtItsKernelsRate() throws {
        let c = Presets.deepseekV3
        let cost = try FlopModel.decode(config: c, tp: 2, gate: .column, contexts: [256], path: .absorbed)
        var hw = Self.cpu
        let plain = Projection(cost: cost, tokens: 1, config: c, tp: 2, hardware: hw)
        hw.absorbedBytesPerSecond = 2.5e9
        let slowed = Projection(cost: cost, tokens: 1, config: c, tp: 2, hardware: hw)
        let a = try #require(slowed.stages.first { $0.name == "attention (absorbed)" })
        #expect(a.bound == .memory && abs(a.seconds - Double(a.bytes) / 2.5e9) < 1e-15)
        for (s, s0) in zip(slowed.stages, plain.stages) where s.name != a.name { #expect(s == s0, "\(s.name)") }
    }

    @Test func fp8WeightsStreamOneBytePerValueAndScalesPerBlock() throws {
        let c = Presets.deepseekV3
        let cost = try FlopModel.decode(config: c, tp: 2, gate: .column, contexts: [256], path: .absorbed)
        let bf16 = Projection(cost: cost, tokens: 1, config: c, tp: 2, hardware: Self.cpu)
        let fp8hw = Self.cpu.holding(quantization: .fp8, cacheBytesPerToken: nil, config: c)
        let fp8 = Projection(cost: cost, tokens: 1, config: c, tp: 2, hardware: fp8hw)
        for (s8, s16) in zip(fp8.stages, bf16.stages) {
            let stage = try #require(cost.stage(s8.name)), w = stage.weightElements ?? 0
            #expect(w > 0, "\(s8.name) reads a weight")
            // The weight's bytes go from 2 to 1 + 4/16384 per value; the rest stays at 2.
            let expected = Double(s16.bytes) - 2 * Double(w) + Double(w) * (1 + 4.0 / 16384)
            #expect(abs(Double(s8.bytes) - expected) <= 1, "\(s8.name): \(s8.bytes) vs \(expected)")
            #expect(s8.bound == .memory && s8.seconds < 0.6 * s16.seconds, "\(s8.name) streams about half the bytes")
        }
        #expect(fp8hw.flopsPerSecond == Self.cpu.flopsPerSecond, "a CPU without an FP8 rate multiplies bf16 tiles")
        #expect(Hardware.h100.holding(quantization: .fp8, cacheBytesPerToken: nil, config: c).flopsPerSecond == 1979e12)
        #expect(Hardware.h200.holding(quantization: .fp8, cacheBytesPerToken: nil, config: c).flopsPerSecond == 1979e12)
        #expect(Hardware.h100.holding(quantization: nil, cacheBytesPerToken: nil, config: c).flopsPerSecond == 989e12)
    }

    @Test func theCacheIsReadAtItsDtypesBytes() throws {
        let c = Presets.deepseekV3
        for path in [DecodePath.absorbed, .naive] {
            let cost = try FlopModel.decode(config: c, tp: 2, gate: .column, contexts: [4096], path: path)
            let cached = cost.stages.compactMap(\.cacheElements).reduce(0, +)
            #expect(cached > 0, "\(path) reads the cache")
            var bytes: [KVCacheDType: Int] = [:]
            for dtype in KVCacheDType.allCases {
                let hw = Self.cpu.holding(quantization: nil, cacheBytesPerToken: KVCache.bytesPerToken(config: c, dtype: dtype), config: c)
                bytes[dtype] = Projection(cost: cost, tokens: 1, config: c, tp: 2, hardware: hw).stages.reduce(0) { $0 + $1.bytes }
            }
            // fp8: FlashMLA's 656 bytes per token of 576 values; bf16 2 bytes per value; f32 4.
            let perValue = { (d: KVCacheDType) in Double(KVCache.bytesPerToken(config: c, dtype: d)) / 576 }
            #expect(perValue(.fp8) == 656.0 / 576 && perValue(.bf16) == 2)
            for d in KVCacheDType.allCases {
                let expected = Double(bytes[.bf16]!) + Double(cached) * (perValue(d) - 2)
                #expect(abs(Double(bytes[d]!) - expected) <= Double(cost.stages.count), "\(path) \(d)")
            }
        }
    }

    @Test func aLayoutsRanksShareTheCoresTheyRunOn() throws {
        let c = Presets.deepseekV2Lite
        var hw = Self.cpu
        hw.cores = 2
        for (name, dp, tp) in [("tp4", 1, 4), ("dp4", 4, 1), ("dp2xtp2", 2, 2)] {
            let layout = try ParallelLayout(ranks: 4, dp: dp, dcp: 1)
            let plan = try LayoutPlan(config: c, layout: layout, context: 64, batch: 4, bytesPerElement: 2)
            let shared = plan.seconds(plan.prefill, [], config: c, hardware: hw).compute
            var own = hw
            own.cores = nil
            let alone = plan.seconds(plan.prefill, [], config: c, hardware: own).compute
            // 4 ranks on 2 cores: each gets half a core, whatever its tp.
            #expect(abs(shared / alone - 2) < 1e-9, "\(name) (tp \(tp)): \(shared) vs \(alone)")
        }
    }
}
