import Foundation
@testable import Measure
import MLA
import Planner
import TensorCore
import TensorParallel
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

    /// DCP's all-gather and reduce-scatter are projected at the links the probe measured for
    /// them (named in the source); without them the allreduce's link stands in. The probe's
    /// derivation takes back the latency and rate a ring of p − 1 steps was timed at.
    @Test func dcpExchangesAreProjectedAtTheirOwnProbedLinks() throws {
        var r = Self.rates(bf16: 100e9)
        let c = Presets.deepseekV2Lite
        let plan = try LayoutPlan(config: c, layout: ParallelLayout(ranks: 4, dp: 1, dcp: 2), context: 256, batch: 4, bytesPerElement: 4)
        let gather = try #require(plan.decodeCollectives.first { $0.kind == "all-gather" })
        let scatter = try #require(plan.decodeCollectives.first { $0.kind == "reduce-scatter" })
        func dcpSeconds(_ hw: Hardware) -> Double {
            plan.stageSeconds(plan.decode, plan.decodeCollectives, config: c, hardware: hw).filter { $0.name == "dcp" }.reduce(0) { $0 + $1.seconds }
        }
        let before = dcpSeconds(r.hardware)
        #expect(abs(before - (Double(gather.bytes) / 2e9 + Double(scatter.bytes) / 2 / 2e9 + 2 * 2e-6)) < 1e-12 * before)
        (r.allGatherBytesPerSecond, r.allGatherStepLatencySeconds) = (4e9, 1e-6)
        (r.reduceScatterBytesPerSecond, r.reduceScatterStepLatencySeconds) = (0.25e9, 5e-6)
        let hw = r.hardware(for: .f32)
        #expect(hw.allGatherLink == Hardware.Link(4e9, 1e-6) && hw.reduceScatterLink == Hardware.Link(0.25e9, 5e-6))
        #expect(hw.source.contains("all-gather 4.00 GB/s + 1.00 µs, reduce-scatter 0.25 GB/s + 5.00 µs per step"), "\(hw.source)")
        let after = dcpSeconds(hw)
        #expect(abs(after - (Double(gather.bytes) / 4e9 + 1e-6 + Double(scatter.bytes) / 2 / 0.25e9 + 5e-6)) < 1e-12 * after)
        // The allreduce keeps the reduction's link.
        let allreduce = { (h: Hardware) in plan.stageSeconds(plan.decode, plan.decodeCollectives, config: c, hardware: h).first { $0.name == "allreduce" }?.seconds }
        #expect(allreduce(hw) == allreduce(r.hardware))
    }

    /// A link is the line through both timings (steps · latency + bytes / rate), for the
    /// allreduce's 2(p − 1) steps and an exchange's p − 1, with the large size only 2× the small
    /// one as well as 256×: taking the whole small timing as latency overstated the rate there.
    @Test func aLinkIsFittedToBothTimingsNotTheSmallOneAsLatency() {
        let (rate, latency) = (3e9, 2e-6)
        for p in [2, 3, 4, 8] {
            for (small, large) in [(4096, 8192), (4096, 1 << 20)] {
                let t = { (steps: Int, bytes: Double) in Double(steps) * latency + bytes / rate }
                let share = Double(2 * (p - 1)) / Double(p)
                let a = RateProbe.link(small: (t(2 * (p - 1), share * Double(small)), small),
                                       large: (t(2 * (p - 1), share * Double(large)), large), ranks: p)
                let received = { (bytes: Int) in Double((p - 1) * bytes / p) }
                let e = RateProbe.steps(small: (t(p - 1, received(small)), received(small)), large: (t(p - 1, received(large)), received(large)), ranks: p)
                for l in [a, e] {
                    #expect(abs(l.rate / rate - 1) < 1e-9 && abs(l.latency / latency - 1) < 1e-9, "p=\(p) \(small)→\(large): \(l)")
                }
            }
        }
        // Timings that did not grow with the bytes: the small one is all latency, the rate finite.
        let flat = RateProbe.steps(small: (1e-5, 4096), large: (1e-5, 8192), ranks: 2)
        #expect(flat.latency == 1e-5 && flat.rate.isFinite && flat.rate > 0)
        // A small timing under the line: no latency, the large timing's own rate.
        let under = RateProbe.steps(small: (1e-9, 4096), large: (2e-6, 8192), ranks: 2)
        #expect(under.latency == 0 && under.rate == 8192 / 2e-6)
    }

    /// Memory-bound stages stream at the decode product's measured rate on the run's weight
    /// format where the probe timed it (named in the source), at memcpy's otherwise.
    @Test func memoryBoundStagesStreamAtTheDecodeProductsRate() throws {
        var r = Self.rates(bf16: 100e9)
        #expect(r.hardware.memoryBytesPerSecond == 20e9 && r.hardware.source.contains("copy 20.0 GB/s"))
        (r.decodeStreamBytesPerSecond, r.decodeStreamFormat) = (31e9, "fp8")
        let hw = r.hardware(for: .bf16)
        #expect(hw.memoryBytesPerSecond == 31e9 && hw.source.contains("fp8 weights streamed by the decode's product 31.0 GB/s"), "\(hw.source)")
        let cost = try FlopModel.decode(config: Presets.deepseekV3, tp: 2, gate: .column, contexts: [256], path: .absorbed)
        let oProj = try #require(Projection(cost: cost, tokens: 1, config: Presets.deepseekV3, tp: 2, hardware: hw).stages.first { $0.name == "o_proj" })
        #expect(oProj.bound == .memory && abs(oProj.seconds - Double(oProj.bytes) / 31e9) < 1e-15)
    }

    /// A stream probe holds its weight as the run does and reads every byte of it.
    @Test func theStreamProbeHoldsTheRunsWeightFormat() {
        for (storage, format, bytes) in [(F32Storage.self as any WeightStorage.Type, "f32", 4), (BF16Storage.self, "bf16", 2),
                                         (FP8BlockStorage.self, "fp8", 1)] {
            let probe = StreamProbe(storage: storage, bytes: 1 << 20)
            #expect(probe.format == format, "\(storage)")
            let values = probe.outFeatures * StreamProbe.inFeatures
            #expect(probe.weightBytes == values * bytes + (format == "fp8" ? 4 * values / (128 * 128) : 0), "\(format)")
            var y = [Float](repeating: 0, count: probe.outFeatures)
            y.withUnsafeMutableBufferPointer { probe.run(into: $0.baseAddress!) }
            // 0.5 · 0.25 (f32, bf16) or 0.5 · 1/64 (fp8) over 4096 inputs, in every output.
            let expected: Float = format == "fp8" ? 0.5 / 64 * 4096 : 0.125 * 4096
            #expect(y.allSatisfy { abs($0 - expected) <= 1e-3 * expected }, "\(format): \(y.prefix(3))")
        }
    }

    /// With a model, the stream probe holds the layer's own decode weights at this rank's local
    /// shapes, as the run holds them: every 2-D projection but kv_b_proj (the absorbed probe's),
    /// byte for byte what the plan counts for them, for every storage and tp; and it reads them all.
    @Test func theStreamProbeStreamsTheLayersOwnDecodeWeights() {
        let c = Presets.deepseekV2Lite
        for (storage, format) in [(F32Storage.self as any WeightStorage.Type, "f32"), (BF16Storage.self, "bf16"), (FP8BlockStorage.self, "fp8")] {
            for tp in [1, 2, 4] {
                let probe = StreamProbe(storage: storage, config: c, tp: tp, gate: .column)
                let plan = ShardingPlan(config: c, tp: tp, gate: .column, precision: storage.activations, quantization: storage.quantization)
                let streamed = plan.weights.filter { $0.localShape.count == 2 && !$0.name.contains("kv_b_proj") }
                #expect(probe.format == format && probe.shapes == streamed.map(\.localShape), "\(format) tp=\(tp): \(probe.shapes)")
                #expect(probe.weightBytes == streamed.reduce(0) { $0 + $1.bytesPerRank }, "\(format) tp=\(tp)")
                #expect(probe.shapes.count == 4 && probe.shapes.contains([c.hiddenSize, c.attnOutWidth / tp]), "\(probe.shapes)")
                // Every output of the last product (o_proj) is its inputs' sum: 0.5 · 0.25 (or 1/64 for fp8) each.
                var y = [Float](repeating: 0, count: probe.outFeatures)
                y.withUnsafeMutableBufferPointer { probe.run(into: $0.baseAddress!) }
                let k = Float(c.attnOutWidth / tp), expected = format == "fp8" ? 0.5 / 64 * k : 0.125 * k
                #expect(y.prefix(c.hiddenSize).allSatisfy { abs($0 - expected) <= 1e-3 * expected }, "\(format) tp=\(tp): \(y.prefix(3))")
            }
        }
    }

    /// A rates file's kernel rates are read and held to the rule the base rates are: every rate
    /// finite and above zero, the latency at least zero, or the file is refused naming the key.
    @Test func aRatesFileWithABadKernelRateIsRefusedNamingIt() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mla-tp-kernel-rates-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let base = #"{"sgemmFlopsPerSecond": 5e10, "copyBytesPerSecond": 1e10, "allReduceBytesPerSecond": 1e9, "allReduceStepLatencySeconds": 1e-6, "allReduceLargeBytes": 1048576, "allReduceSmallBytes": 4096, "ranks": 2, "cores": 2"#
        let keys = ["bf16GemmFlopsPerSecond", "attentionFlopsPerSecond", "fixedOrderGemmFlopsPerSecond", "decodeStreamBytesPerSecond",
                    "absorbedBytesPerSecond", "reductionBytesPerSecond", "allGatherBytesPerSecond", "reduceScatterBytesPerSecond"]
        let file = dir.appendingPathComponent("rates.json")
        // A link's rate comes with its latency.
        let latencyOf = ["reductionBytesPerSecond": "reductionStepLatencySeconds", "allGatherBytesPerSecond": "allGatherStepLatencySeconds",
                         "reduceScatterBytesPerSecond": "reduceScatterStepLatencySeconds"]
        for key in keys {
            let pair = latencyOf[key].map { ", \"\($0)\": 1e-6" } ?? ""
            try Data((base + ", \"\(key)\": 3e9\(pair)}").utf8).write(to: file)
            #expect(try MeasuredRates.load(file.path).hardware(for: .bf16).source.isEmpty == false, "\(key) 3e9 is a rate")
            for bad in ["0", "-1e9"] {
                try Data((base + ", \"\(key)\": \(bad)\(pair)}").utf8).write(to: file)
                #expect(throws: MeasureError.self, "\(key) \(bad)") { try MeasuredRates.load(file.path) }
                do { _ = try MeasuredRates.load(file.path) } catch { #expect("\(error)".contains(key) && "\(error)".contains(file.path), "\(error)") }
            }
        }
        for (rate, latency) in latencyOf {
            try Data((base + ", \"\(rate)\": 1e9, \"\(latency)\": -1e-6}").utf8).write(to: file)
            #expect(throws: MeasureError.self, "\(latency)") { try MeasuredRates.load(file.path) }
            do { _ = try MeasuredRates.load(file.path) } catch { #expect("\(error)".contains(latency), "\(error)") }
            // One half of a link alone is refused, naming both keys.
            for half in ["\"\(rate)\": 1e9", "\"\(latency)\": 1e-6"] {
                try Data((base + ", \(half)}").utf8).write(to: file)
                do { _ = try MeasuredRates.load(file.path); Issue.record("\(half) alone was accepted") } catch {
                    #expect("\(error)".contains(rate) && "\(error)".contains(latency) && "\(error)".contains("needs both"), "\(error)")
                }
            }
        }
        try Data((base + #", "reductionBytesPerSecond": 1e9, "reductionStepLatencySeconds": 0}"#).utf8).write(to: file)
        #expect(try MeasuredRates.load(file.path).hardware.linkLatencySeconds == 0)
    }

    /// Rates measured before the bf16 product was probed stand in with the sgemm's, and say so.
    @Test func ratesWithoutABF16RateSayTheSgemmStandsIn() {
        let hw = Self.rates(bf16: nil).hardware(for: .bf16)
        #expect(hw.flopsPerSecond == 50e9 && hw.source.contains("the sgemm's stands in"))
    }
}
