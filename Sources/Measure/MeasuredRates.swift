import Foundation
import MLA
import Planner
import TensorCore

/// This machine's rates, measured by the rate probe (`mla-tp sweep-step --probe` under
/// `mpirun -n N`) with every rank busy at once, or taken from a bench report: the inputs of
/// `--hardware cpu-measured`.
public struct MeasuredRates: Codable, Sendable {
    /// `cblas_sgemm` at `sgemmShape` (f32, one BLAS thread), per rank with every rank busy, FLOP/s (best of 15).
    public var sgemmFlopsPerSecond: Double
    /// `memcpy` of 64 MiB, bytes read + written per second (STREAM's convention), per rank with every rank busy (best of 15).
    public var copyBytesPerSecond: Double
    /// In-place f32 sum allreduce of `allReduceLargeBytes` over `ranks` ranks: bytes a rank sends
    /// (2(p−1)/p · n) per second, after the latency term is taken off (best of 15).
    public var allReduceBytesPerSecond: Double
    /// The small allreduce's time (best of 5 × 50 calls) over its 2(p−1) ring steps, seconds per step.
    public var allReduceStepLatencySeconds: Double
    public var allReduceLargeBytes: Int
    public var allReduceSmallBytes: Int
    /// M, N, K of the probe's sgemm: x [M, K] · W with W [K, N].
    public var sgemmShape: [Int]?
    /// Ranks of the probe and cores of the machine.
    public var ranks: Int
    public var cores: Int
    /// The bf16 product at the same shape, on the kernel a bf16 layer's projections take here
    /// (oneDNN's bf16 matmul where the CPU has native bf16, the widening fallback elsewhere),
    /// per rank with every rank busy, FLOP/s (best of 15), and that kernel; the sgemm's kernel.
    /// nil in rates measured before the probe timed them.
    public var bf16GemmFlopsPerSecond: Double?
    public var bf16GemmKernel: String?
    public var sgemmKernel: String?
    /// The expanded attention kernel (a prefill's) on one causal sequence of
    /// `attentionShape` = [heads, tokens], in the probed layer's precision, per rank with every
    /// rank busy, FLOP/s (best of 15): the `attention` stage's rate. nil: not probed (the GEMM's stands in).
    public var attentionFlopsPerSecond: Double?
    public var attentionShape: [Int]?
    /// The fixed-order kernels' product (`--invariant`) at the sgemm's shape with the weight in
    /// `fixedOrderPrecision`, per rank with every rank busy, FLOP/s (best of 15); nil: not probed.
    public var fixedOrderGemmFlopsPerSecond: Double?
    public var fixedOrderPrecision: Precision?
    /// The run's own reduction (`--allreduce`, `--allreduce-dtype`: MPI_Allreduce, the
    /// shared-memory window or the bf16 reduction) timed as the link: its rate (bytes a rank
    /// sends in a ring, 2(p−1)/p of the payload in `reductionPrecision`, per second, latency taken
    /// off) and its latency per ring step, and the paths its small and large reductions took.
    /// nil: not probed (the raw f32 MPI_Allreduce's rates stand in).
    /// A decode step's weight streaming (`StreamProbe`): one row through the product the run's
    /// decode takes, on the weights `decodeStreamShapes` (`[out, in]` each: the layer's own local
    /// projections, or one 64 MiB weight) held as `decodeStreamFormat` (f32, bf16, fp8), after
    /// the caches are evicted; weight bytes read per second, per rank with every rank busy (best
    /// of 15); the memory rate of the projection where probed (nil: the copy's stands in).
    public var decodeStreamBytesPerSecond: Double?
    public var decodeStreamFormat: String?
    public var decodeStreamShapes: [[Int]]?
    /// The absorbed decode kernel (`AbsorbedProbe`) on one query of `absorbedShape` = [heads,
    /// cached tokens] after the caches are evicted, bytes streamed per second, per rank with every
    /// rank busy (best of 15): the `attention (absorbed)` stage's memory rate. nil: not probed.
    public var absorbedBytesPerSecond: Double?
    public var absorbedShape: [Int]?
    public var reductionBytesPerSecond: Double?
    public var reductionStepLatencySeconds: Double?
    public var reductionPrecision: Precision?
    public var reductionPaths: [String]?
    /// DCP's exchanges (and the sharded latent's gather) through the run's collectives, each as
    /// a link of p − 1 ring steps: f32 `MPI_Allgather` and `MPI_Reduce_scatter_block`, bytes a
    /// rank receives per second (latency taken off, best of 15) and the latency per step (best
    /// of 5 × 50 small calls). nil: not probed (the allreduce's link stands in).
    public var allGatherBytesPerSecond: Double?
    public var allGatherStepLatencySeconds: Double?
    public var reduceScatterBytesPerSecond: Double?
    public var reduceScatterStepLatencySeconds: Double?

    /// The rates as the projection's hardware model: one rank's arithmetic and memory rate,
    /// the link, f32 elements, and the cores the ranks share.
    public var hardware: Hardware {
        var hw = Hardware(name: "cpu-measured", flopsPerSecond: sgemmFlopsPerSecond, memoryBytesPerSecond: copyBytesPerSecond,
                          linkBytesPerSecond: allReduceBytesPerSecond, linkLatencySeconds: allReduceStepLatencySeconds,
                          bytesPerElement: 4, cores: cores,
                          source: source(gemm: "sgemm " + (sgemmShape ?? [1024, 1024, 1024]).map(String.init).joined(separator: "×"), rate: sgemmFlopsPerSecond))
        hw.attentionFlopsPerSecond = attentionFlopsPerSecond
        if let stream = decodeStreamBytesPerSecond { hw.memoryBytesPerSecond = stream }
        hw.absorbedBytesPerSecond = absorbedBytesPerSecond
        if let rate = reductionBytesPerSecond, let latency = reductionStepLatencySeconds {
            (hw.linkBytesPerSecond, hw.linkLatencySeconds) = (rate, latency)
        }
        if let rate = allGatherBytesPerSecond, let latency = allGatherStepLatencySeconds { hw.allGatherLink = .init(rate, latency) }
        if let rate = reduceScatterBytesPerSecond, let latency = reduceScatterStepLatencySeconds { hw.reduceScatterLink = .init(rate, latency) }
        return hw
    }

    /// Where the rates come from, naming the GEMM whose rate the model takes.
    private func source(gemm: String, rate: Double) -> String {
        let attention = attentionFlopsPerSecond.map { r in
            String(format: ", attention kernel %.1f GFLOP/s (%@)", r / 1e9, (attentionShape ?? []).map(String.init).joined(separator: " heads × ") + " tokens")
        } ?? ""
        var link = String(format: "MPI allreduce %.2f GB/s + %.2f µs per ring step", allReduceBytesPerSecond / 1e9, allReduceStepLatencySeconds * 1e6)
        if let r = reductionBytesPerSecond, let l = reductionStepLatencySeconds {
            link = String(format: "the run's reduction (%@, %@) %.2f GB/s + %.2f µs per ring step",
                          reductionPrecision?.rawValue ?? "f32", (reductionPaths ?? []).joined(separator: " / "), r / 1e9, l * 1e6)
        }
        let streamed = decodeStreamShapes.map { $0.count == 1 ? "one [\($0[0].map(String.init).joined(separator: ", "))] weight, "
                                                               : "the layer's \($0.count) weights, " } ?? ""
        let memory = decodeStreamBytesPerSecond.map { String(format: "%@ weights streamed by the decode's product %.1f GB/s (%@copy %.1f)",
                                                            decodeStreamFormat ?? "?", $0 / 1e9, streamed, copyBytesPerSecond / 1e9) }
            ?? String(format: "copy %.1f GB/s", copyBytesPerSecond / 1e9)
        let absorbed = absorbedBytesPerSecond.map { String(format: ", absorbed decode %.1f GB/s (%@)", $0 / 1e9,
                                                           (absorbedShape ?? []).map(String.init).joined(separator: " heads × ") + " cached") } ?? ""
        if let g = allGatherBytesPerSecond, let gl = allGatherStepLatencySeconds,
           let r = reduceScatterBytesPerSecond, let rl = reduceScatterStepLatencySeconds {
            link += String(format: ", all-gather %.2f GB/s + %.2f µs, reduce-scatter %.2f GB/s + %.2f µs per step", g / 1e9, gl * 1e6, r / 1e9, rl * 1e6)
        }
        return String(format: "measured here: %@ %.1f GFLOP/s per rank%@, %@%@, %@, %d cores",
                      gemm, rate / 1e9, attention, memory, absorbed, link, cores)
    }

    /// The hardware model of a layer whose projections run in `precision`: the rate of the kernel
    /// those GEMMs take (the fixed-order product where the probe timed it, that is in an
    /// invariant job; else sgemm for f32; the bf16 product for bf16 and for fp8 weights, whose
    /// prefill dequantizes a tile to bf16 and multiplies it there), at that precision's element
    /// size. Rates measured before the bf16 product was probed fall back to the sgemm's, and
    /// the source says so.
    public func hardware(for precision: Precision) -> Hardware {
        if let rate = fixedOrderGemmFlopsPerSecond, fixedOrderPrecision == precision {
            var hw = hardware
            // The invariant attention's products run on the same fixed-order kernels.
            (hw.flopsPerSecond, hw.bytesPerElement, hw.attentionFlopsPerSecond) = (rate, precision.bytesPerElement, nil)
            hw.source = source(gemm: "fixed-order product (\(FixedOrderGemm.isa), \(precision.rawValue) weights)", rate: rate)
            return hw
        }
        guard precision == .bf16 else { return hardware }
        var hw = hardware
        hw.bytesPerElement = 2
        if let rate = bf16GemmFlopsPerSecond {
            hw.flopsPerSecond = rate
            hw.source = source(gemm: "bf16 GEMM (\(bf16GemmKernel ?? "?"))", rate: rate)
        } else {
            hw.source += "; no bf16 GEMM rate in these rates: the sgemm's stands in"
        }
        return hw
    }

    /// Reads a rates file written by `mla-tp sweep-step --probe --out FILE`.
    public static func load(_ path: String) throws -> MeasuredRates {
        let remedy = "write one with `mpirun -n 2 mla-tp sweep-step --probe --out \(path)`"
        let rates = try MeasureError.decode(MeasuredRates.self, path: path, what: "rates file", remedy: remedy)
        // A rate of zero, below zero or not finite would project "inf s" or a negative time.
        // Each kernel's rate, where the file has one, is held to the same rule.
        // Each link is a rate and a latency, and must have both.
        let links: [(rate: String, latency: String, Double?, Double?)] = [
            ("reductionBytesPerSecond", "reductionStepLatencySeconds", rates.reductionBytesPerSecond, rates.reductionStepLatencySeconds),
            ("allGatherBytesPerSecond", "allGatherStepLatencySeconds", rates.allGatherBytesPerSecond, rates.allGatherStepLatencySeconds),
            ("reduceScatterBytesPerSecond", "reduceScatterStepLatencySeconds", rates.reduceScatterBytesPerSecond, rates.reduceScatterStepLatencySeconds)]
        let kernels: [(String, Double?)] = [("bf16GemmFlopsPerSecond", rates.bf16GemmFlopsPerSecond),
                                            ("attentionFlopsPerSecond", rates.attentionFlopsPerSecond),
                                            ("fixedOrderGemmFlopsPerSecond", rates.fixedOrderGemmFlopsPerSecond),
                                            ("decodeStreamBytesPerSecond", rates.decodeStreamBytesPerSecond),
                                            ("absorbedBytesPerSecond", rates.absorbedBytesPerSecond)] + links.map { ($0.rate, $0.2) }
        let positive: [(String, Double)] = [("sgemmFlopsPerSecond", rates.sgemmFlopsPerSecond), ("copyBytesPerSecond", rates.copyBytesPerSecond)]
            + (rates.ranks > 1 ? [("allReduceBytesPerSecond", rates.allReduceBytesPerSecond)] : [])
            + kernels.compactMap { key, value in value.map { (key, $0) } }
        let atLeastZero = [("allReduceBytesPerSecond", rates.allReduceBytesPerSecond), ("allReduceStepLatencySeconds", rates.allReduceStepLatencySeconds)]
            + links.compactMap { l in l.3.map { (l.latency, $0) } }
        // One half of a link alone would be dropped without a word.
        for l in links where (l.2 == nil) != (l.3 == nil) {
            let (given, missing) = l.2 != nil ? (l.rate, l.latency) : (l.latency, l.rate)
            throw MeasureError.unreadable(path: path, what: "rates file", detail: "\(given) is given without \(missing): a link needs both", remedy: remedy)
        }
        if let (key, value) = positive.first(where: { !$0.1.isFinite || $0.1 <= 0 }) ?? atLeastZero.first(where: { !$0.1.isFinite || $0.1 < 0 }) {
            throw MeasureError.unreadable(path: path, what: "rates file",
                                          detail: "\(key) is \(value): every rate must be finite and above zero (the latency at least zero)", remedy: remedy)
        }
        return rates
    }

    /// Rates from a bench report: the slowest rank's same-run sgemm (prefill) and memcpy
    /// (decode), and the raw MPI_Allreduce of the forward's bytes (fastest sample, no separate
    /// latency term: it is folded into the rate at that size).
    public static func fromBench(_ path: String, needLink: Bool) throws -> MeasuredRates {
        let remedy = "write it with `mpirun -n 2 mla-tp bench --phase both --json > \(path)`"
        let report = try MeasureError.decode(BenchReport.self, path: path, what: "bench report", remedy: remedy)
        let sgemm = report.ranks.compactMap { $0.prefill?.sgemmFlopsPerSecond }.min()
        let copy = report.ranks.compactMap { $0.decode?.copyBytesPerSecond ?? $0.prefill?.copyBytesPerSecond }.min()
        guard let sgemm, let copy else {
            throw MeasureError.incomplete(path: path, what: "the sgemm (prefill) or memcpy (decode) rate", remedy: "run bench with --phase both")
        }
        var link = 0.0, bytes = 0
        if report.tp > 1, let phase = report.ranks.first?.prefill ?? report.ranks.first?.decode, let raw = phase.rawAllReduceSeconds, raw.min > 0 {
            bytes = phase.allReduceBytes
            link = 2 * Double(report.tp - 1) / Double(report.tp) * Double(bytes) / raw.min
        }
        if needLink && link == 0 {
            throw MeasureError.incomplete(path: path, what: "an allreduce (bench ran at tp=1)", remedy: "run bench at tp ≥ 2 for a link rate")
        }
        return MeasuredRates(sgemmFlopsPerSecond: sgemm, copyBytesPerSecond: copy, allReduceBytesPerSecond: link,
                             allReduceStepLatencySeconds: 0, allReduceLargeBytes: bytes, allReduceSmallBytes: 0,
                             sgemmShape: report.ranks.first?.prefill?.sgemmShape, ranks: report.tp, cores: report.cpus)
    }
}
