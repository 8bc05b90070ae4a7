@testable import Measure
import MLA
import Planner
import TensorCore
import Testing

/// The projection takes the rate of the kernel a stage runs on: a bf16 layer's GEMMs are never
/// projected at the f32 sgemm's rate.
@Suite struct KernelRateTests {
    static func rates(bf16: Double?) -> MeasuredRates {
        var r = MeasuredRates(sgemmFlopsPerSecond: 50e9, copyBytesPerSecond: 20e9, allReduceBytesPerSecond: 2e9, allReduceStepLatencySeconds: 2e-6,
                              allReduceLargeBytes: 1 << 20, allReduceSmallBytes: 4096, sgemmShape: [128, 4096, 7168], ranks: 2, cores: 2)
        r.bf16GemmFlopsPerSecond = bf16
        r.bf16GemmKernel = bf16 == nil ? nil : "oneDNN matmul brg:avx512_core_bf16"
        return r
    }

    @Test func eachPrecisionIsProjectedAtItsOwnKernelsRate() throws {
        let r = Self.rates(bf16: 100e9)
        #expect(r.hardware(for: .f32).flopsPerSecond == 50e9 && r.hardware(for: .f32).bytesPerElement == 4)
        let bf16 = r.hardware(for: .bf16)
        #expect(bf16.flopsPerSecond == 100e9 && bf16.bytesPerElement == 2 && bf16.source.contains("bf16 GEMM (oneDNN matmul"))
        // A compute-bound stage of a bf16 prefill takes its FLOPs at the bf16 rate: half the f32 time here.
        let cost = try FlopModel.prefill(config: Presets.deepseekV3, tp: 2, gate: .column, sequenceLengths: [512])
        let at32 = Projection(cost: cost, tokens: 512, config: Presets.deepseekV3, tp: 2, hardware: r.hardware(for: .f32))
        let at16 = Projection(cost: cost, tokens: 512, config: Presets.deepseekV3, tp: 2, hardware: bf16)
        let gate32 = try #require(at32.stages.first { $0.name == "gate" }), gate16 = try #require(at16.stages.first { $0.name == "gate" })
        #expect(gate32.bound == .compute && gate16.bound == .compute)
        #expect(abs(gate16.seconds - Double(gate16.flops) / 100e9) < 1e-12 && abs(gate32.seconds / gate16.seconds - 2) < 1e-9)
    }

    /// The link is the run's own reduction where the probe timed it (its path and precision in
    /// the source), the raw f32 MPI_Allreduce otherwise; an allreduce projects at that rate.
    @Test func theAllreduceIsProjectedAtTheRunsOwnReductionPath() {
        var r = Self.rates(bf16: 100e9)
        #expect(r.hardware.linkBytesPerSecond == 2e9 && r.hardware.linkLatencySeconds == 2e-6)
        (r.reductionBytesPerSecond, r.reductionStepLatencySeconds) = (0.5e9, 0.4e-6)
        (r.reductionPrecision, r.reductionPaths) = (.bf16, ["shared memory", "MPI reduce-scatter + all-gather (bf16)"])
        for precision in [Precision.f32, .bf16] {
            let hw = r.hardware(for: precision)
            #expect(hw.linkBytesPerSecond == 0.5e9 && hw.linkLatencySeconds == 0.4e-6, "\(precision)")
            #expect(hw.source.contains("the run's reduction (bf16, shared memory / MPI") && !hw.source.contains("MPI allreduce"), "\(hw.source)")
            let t = Projection.ringAllReduceSeconds(bytes: 1 << 20, tp: 2, hardware: hw)
            #expect(abs(t - (Double(1 << 20) / 0.5e9 + 2 * 0.4e-6)) < 1e-15)
        }
    }

    /// Rates measured before the bf16 product was probed stand in with the sgemm's, and say so.
    @Test func ratesWithoutABF16RateSayTheSgemmStandsIn() {
        let hw = Self.rates(bf16: nil).hardware(for: .bf16)
        #expect(hw.flopsPerSecond == 50e9 && hw.source.contains("the sgemm's stands in"))
    }
}
