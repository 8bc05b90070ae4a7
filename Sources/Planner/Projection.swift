import Foundation
import MLA
import TensorParallel

/// The rates a projection needs for one rank: arithmetic, memory and link.
///
/// The GPU figures are NVIDIA's published peaks (sources in docs/projection.md); the CPU
/// figures are measured on the machine at hand (`mla-tp plan --hardware cpu-measured`).
public struct Hardware: Codable, Sendable, Equatable {
    public var name: String
    /// Peak dense GEMM rate of one rank, FLOP/s.
    public var flopsPerSecond: Double
    /// Memory bandwidth of one rank, bytes/s.
    public var memoryBytesPerSecond: Double
    /// What one rank can send to its ring neighbour, bytes/s (one direction).
    public var linkBytesPerSecond: Double
    /// Latency of one ring step of the allreduce, seconds.
    public var linkLatencySeconds: Double
    /// Bytes per weight/activation element the hardware runs in (2: BF16 on the GPUs, 4: the f32
    /// CPU forward). The plan counts elements, so this scales its traffic and the allreduce.
    public var bytesPerElement: Int
    /// Cores the ranks share, when ranks can outnumber them (a CPU): with tp ranks on fewer
    /// cores, each rank gets `cores/tp` of a core's arithmetic and memory rate. nil: one device per rank.
    public var cores: Int?
    /// Where the numbers come from.
    public var source: String
    /// The expanded attention kernel's rate, FLOP/s, for the `attention` stage (its many small
    /// per-head products run far below a large GEMM's rate on a CPU); nil: `flopsPerSecond`.
    public var attentionFlopsPerSecond: Double?
    /// The absorbed decode kernel's streaming rate, bytes/s, for the `attention (absorbed)`
    /// stage (its per-head W_UK and W_UV products stream below the row kernels' rate); nil: `memoryBytesPerSecond`.
    public var absorbedBytesPerSecond: Double?
    /// Dense FP8 tensor rate, FLOP/s, where the hardware has one (the GPUs); nil: none.
    public var fp8FlopsPerSecond: Double?
    /// Bytes per weight element and per latent-cache element when they differ from
    /// `bytesPerElement` (fp8 weights; a cache dtype other than the activations'); nil: the same.
    public var weightBytesPerElement: Double?
    public var cacheBytesPerElement: Double?
    /// A collective's own link where it was measured (the CPU probe times DCP's all-gather and
    /// reduce-scatter through the run's collectives): bytes a rank receives per second, and the
    /// latency of one of its p − 1 ring steps. nil: the allreduce's link stands in.
    public struct Link: Codable, Sendable, Equatable {
        public var bytesPerSecond: Double
        public var stepLatencySeconds: Double
        public init(_ bytesPerSecond: Double, _ stepLatencySeconds: Double) {
            (self.bytesPerSecond, self.stepLatencySeconds) = (bytesPerSecond, stepLatencySeconds)
        }
    }
    public var allGatherLink: Link?
    public var reduceScatterLink: Link?
    /// The allreduce's link, which stands in for a collective measured on no link of its own.
    public var allReduceLink: Link { Link(linkBytesPerSecond, linkLatencySeconds) }

    /// This hardware with every collective's ring step at `seconds` (the allreduce's, and the
    /// all-gather's and reduce-scatter's where they have links of their own).
    public func withStepLatency(_ seconds: Double) -> Hardware {
        var hw = self
        hw.linkLatencySeconds = seconds
        hw.allGatherLink?.stepLatencySeconds = seconds
        hw.reduceScatterLink?.stepLatencySeconds = seconds
        return hw
    }

    /// This hardware holding the weights as `quantization` and the latent cache at
    /// `cacheBytesPerToken` bytes per cached token of `config`: fp8 weights stream one byte per
    /// value plus one f32 scale per 128×128 block, and where the hardware has an FP8 tensor rate
    /// their products run at it (a GPU's block-scaled W8A8); on a CPU they run as bf16 tiles.
    public func holding(quantization: WeightQuantization?, cacheBytesPerToken: Int?, config: MLAConfig) -> Hardware {
        var hw = self
        if quantization == .fp8 {
            hw.weightBytesPerElement = 1 + 4.0 / Double(128 * 128)
            if let fp8 = fp8FlopsPerSecond {
                hw.flopsPerSecond = fp8
                hw.source += String(format: "; FP8 weights at the FP8 dense rate %.0f TFLOPS", fp8 / 1e12)
            } else {
                hw.source += "; FP8 weights: 1 byte per value + a scale per 128×128 block, multiplied as bf16 tiles"
            }
        }
        if let cacheBytesPerToken {
            hw.cacheBytesPerElement = Double(cacheBytesPerToken) / Double(config.kvLoraRank + config.qkRopeHeadDim)
        }
        return hw
    }

    public init(name: String, flopsPerSecond: Double, memoryBytesPerSecond: Double, linkBytesPerSecond: Double,
                linkLatencySeconds: Double, bytesPerElement: Int, cores: Int? = nil, fp8: Double? = nil, source: String) {
        fp8FlopsPerSecond = fp8
        self.name = name
        self.flopsPerSecond = flopsPerSecond
        self.memoryBytesPerSecond = memoryBytesPerSecond
        self.linkBytesPerSecond = linkBytesPerSecond
        self.linkLatencySeconds = linkLatencySeconds
        self.bytesPerElement = bytesPerElement
        self.cores = cores
        self.source = source
    }

    /// NVIDIA H100 SXM: 989 TFLOPS dense BF16 (1,979 with 2:4 sparsity), 1,979 dense FP8, 3.35 TB/s HBM3, NVLink 4
    /// 900 GB/s per GPU (both directions together, so 450 GB/s each way).
    public static let h100 = Hardware(
        name: "h100", flopsPerSecond: 989e12, memoryBytesPerSecond: 3.35e12, linkBytesPerSecond: 450e9,
        linkLatencySeconds: Hardware.assumedNVLinkStepLatency, bytesPerElement: 2, fp8: 1979e12,
        source: "NVIDIA H100 SXM datasheet: BF16 dense 989 TFLOPS, FP8 dense 1,979 TFLOPS, HBM3 3.35 TB/s, NVLink 900 GB/s (450 GB/s per direction)")

    /// NVIDIA H200 SXM: the H100's compute (989 TFLOPS dense BF16, 1,979 dense FP8), 4.8 TB/s HBM3e, NVLink 4 900 GB/s.
    public static let h200 = Hardware(
        name: "h200", flopsPerSecond: 989e12, memoryBytesPerSecond: 4.8e12, linkBytesPerSecond: 450e9,
        linkLatencySeconds: Hardware.assumedNVLinkStepLatency, bytesPerElement: 2, fp8: 1979e12,
        source: "NVIDIA H200 SXM datasheet: BF16 dense 989 TFLOPS, FP8 dense 1,979 TFLOPS, HBM3e 4.8 TB/s, NVLink 900 GB/s (450 GB/s per direction)")

    /// Per ring step. Not a datasheet figure: an assumption, overridable with `custom:`.
    public static let assumedNVLinkStepLatency = 1e-6

    /// `custom:TFLOPS,HBM_GBps,LINK_GBps,LINK_LATENCY_us`, BF16 elements.
    public static func custom(_ spec: String) throws -> Hardware {
        let parts = spec.split(separator: ",", omittingEmptySubsequences: false)
            .compactMap { Double($0.trimmingCharacters(in: .whitespaces)) }
        // Finite rates above zero (and finite once scaled): inf or 0 would project "inf s".
        let scaled = zip(parts, [1e12, 1e9, 1e9, 1e-6]).map { $0 * $1 }
        guard parts.count == 4, scaled.allSatisfy(\.isFinite), parts[0] > 0, parts[1] > 0, parts[2] > 0, parts[3] >= 0 else {
            throw ProjectionError.badCustom(spec)
        }
        let (tf, hbm, link, lat) = (parts[0], parts[1], parts[2], parts[3])
        return Hardware(name: "custom", flopsPerSecond: tf * 1e12, memoryBytesPerSecond: hbm * 1e9, linkBytesPerSecond: link * 1e9,
                        linkLatencySeconds: lat * 1e-6, bytesPerElement: 2,
                        source: "custom: \(tf) TFLOPS, \(hbm) GB/s memory, \(link) GB/s link, \(lat) µs per ring step")
    }

    /// The share of a core's rates each of `tp` ranks gets.
    public func share(tp: Int) -> Double {
        guard let cores, tp > cores else { return 1 }
        return Double(cores) / Double(tp)
    }
}

public enum ProjectionError: Error, Equatable, CustomStringConvertible {
    case badCustom(String)
    public var description: String {
        switch self {
        case let .badCustom(s):
            return "--hardware custom:\(s) needs four finite numbers, TFLOPS,HBM_GBps,LINK_GBps above 0 and LINK_LATENCY_us at least 0 — e.g. custom:989,3350,450,1"
        }
    }
}

/// Predicted time of one rank's forward: a roofline per stage, `max(FLOPs/peak, bytes/bandwidth)`,
/// summed over the stages (they run one after another), plus o_proj's ring allreduce,
/// `2(p−1)/p · n / link + 2(p−1) · latency`.
public struct Projection: Codable, Sendable, Equatable {
    /// The roof a stage sits under: its FLOPs at peak, or its bytes at the memory bandwidth.
    public enum Bound: String, Codable, Sendable { case compute, memory }

    public struct StageTime: Codable, Sendable, Equatable {
        public var name: String
        public var flops: Int
        public var bytes: Int
        public var seconds: Double
        /// Which roof the stage sits under.
        public var bound: Bound
    }

    public var hardware: String
    public var tp: Int
    public var stages: [StageTime]
    /// Bytes of o_proj's allreduce payload at the hardware's element size.
    public var allReduceBytes: Int
    public var allReduceSeconds: Double
    public var computeSeconds: Double { stages.reduce(0) { $0 + $1.seconds } }
    public var totalSeconds: Double { computeSeconds + allReduceSeconds }

    public init(cost: FlopModel.Cost, tokens: Int, config: MLAConfig, tp: Int, hardware hw: Hardware) {
        hardware = hw.name
        self.tp = tp
        let share = hw.share(tp: tp)
        let flopRate = hw.flopsPerSecond * share, memRate = hw.memoryBytesPerSecond * share
        let e = Double(hw.bytesPerElement)
        stages = cost.stages.map { s in
            let w = s.weightElements ?? 0, k = s.cacheElements ?? 0
            let bytes = Int((Double(s.elements - w - k) * e + Double(w) * (hw.weightBytesPerElement ?? e)
                             + Double(k) * (hw.cacheBytesPerElement ?? e)).rounded())
            // Each stage at the rate of the kernel it runs on (a GEMM's where it names none).
            let rate = s.kernel == .expandedAttention ? (hw.attentionFlopsPerSecond ?? hw.flopsPerSecond) * share : flopRate
            let stream = s.kernel == .absorbedDecode ? (hw.absorbedBytesPerSecond ?? hw.memoryBytesPerSecond) * share : memRate
            let compute = Double(s.flops) / rate, memory = Double(bytes) / stream
            return StageTime(name: s.name, flops: s.flops, bytes: bytes, seconds: max(compute, memory),
                             bound: compute >= memory ? .compute : .memory)
        }
        allReduceBytes = tokens * config.hiddenSize * hw.bytesPerElement
        allReduceSeconds = Projection.ringAllReduceSeconds(bytes: allReduceBytes, tp: tp, hardware: hw)
    }

    /// A ring allreduce of `bytes` over tp ranks: each rank sends 2(p−1)/p · n in 2(p−1) steps.
    public static func ringAllReduceSeconds(bytes: Int, tp: Int, hardware hw: Hardware) -> Double {
        guard tp > 1 else { return 0 }
        let p = Double(tp)
        return 2 * (p - 1) / p * Double(bytes) / hw.linkBytesPerSecond + 2 * (p - 1) * hw.linkLatencySeconds
    }
}
