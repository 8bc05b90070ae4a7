import Foundation
import MLA

/// This machine's rates, measured by `mla-tp sweep-step --probe` under `mpirun -n N` with every
/// rank busy at once: the inputs of `--hardware cpu-measured`.
struct MeasuredRates: Codable {
    /// `cblas_sgemm` at `sgemmShape` (f32, one BLAS thread), per rank with every rank busy, FLOP/s (best of 15).
    var sgemmFlopsPerSecond: Double
    /// `memcpy` of 64 MiB, bytes read + written per second (STREAM's convention), per rank with every rank busy (best of 15).
    var copyBytesPerSecond: Double
    /// In-place f32 sum allreduce of `allReduceLargeBytes` over `ranks` ranks: bytes a rank sends
    /// (2(p−1)/p · n) per second, after the latency term is taken off (best of 15).
    var allReduceBytesPerSecond: Double
    /// The small allreduce's time (best of 5 × 50 calls) over its 2(p−1) ring steps, seconds per step.
    var allReduceStepLatencySeconds: Double
    var allReduceLargeBytes: Int
    var allReduceSmallBytes: Int
    /// M, N, K of the probe's sgemm: x [M, K] · W with W [K, N].
    var sgemmShape: [Int]?
    /// Ranks of the probe and cores of the machine.
    var ranks: Int
    var cores: Int

    var hardware: Hardware {
        Hardware(name: "cpu-measured", flopsPerSecond: sgemmFlopsPerSecond, memoryBytesPerSecond: copyBytesPerSecond,
                 linkBytesPerSecond: allReduceBytesPerSecond, linkLatencySeconds: allReduceStepLatencySeconds,
                 bytesPerElement: 4, cores: cores,
                 source: String(format: "measured here: sgemm %@ %.1f GFLOP/s per rank, copy %.1f GB/s, MPI allreduce %.2f GB/s + %.2f µs per ring step, %d cores",
                                (sgemmShape ?? [1024, 1024, 1024]).map(String.init).joined(separator: "×"), sgemmFlopsPerSecond / 1e9, copyBytesPerSecond / 1e9, allReduceBytesPerSecond / 1e9,
                                allReduceStepLatencySeconds * 1e6, cores))
    }

    static func load(_ path: String) throws -> MeasuredRates {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CLIError.input("cannot read rates file \(path) — write one with `mpirun -n 2 mla-tp sweep-step --probe --out \(path)`")
        }
        do { return try JSONDecoder().decode(MeasuredRates.self, from: data) } catch {
            throw CLIError.input("\(path) is not a rates file (\(error)) — write one with `mpirun -n 2 mla-tp sweep-step --probe --out FILE`")
        }
    }

    /// Runs the probe as a child `mpirun -n 2` job (plan itself never starts MPI) and reads its result.
    /// Rates from a `mla-tp bench --json` report: the slowest rank's same-run sgemm (prefill) and
    /// memcpy (decode), and the raw MPI_Allreduce of the forward's bytes (fastest sample, no
    /// separate latency term: it is folded into the rate at that size).
    static func fromBench(_ path: String, needLink: Bool) throws -> MeasuredRates {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CLIError.input("cannot read \(path) — write it with `mpirun -n 2 mla-tp bench --phase both --json > \(path)`")
        }
        let report: BenchReport
        do { report = try JSONDecoder().decode(BenchReport.self, from: data) } catch {
            throw CLIError.input("\(path) is not a bench report (\(error)) — write it with `mpirun -n 2 mla-tp bench --phase both --json`")
        }
        let sgemm = report.ranks.compactMap { $0.prefill?.sgemmFlopsPerSecond }.min()
        let copy = report.ranks.compactMap { $0.decode?.copyBytesPerSecond ?? $0.prefill?.copyBytesPerSecond }.min()
        guard let sgemm, let copy else {
            throw CLIError.input("\(path) lacks the sgemm (prefill) or memcpy (decode) rate — run bench with --phase both")
        }
        var link = 0.0, bytes = 0
        if report.tp > 1, let phase = report.ranks.first?.prefill ?? report.ranks.first?.decode, let raw = phase.rawAllReduceSeconds, raw.min > 0 {
            bytes = phase.allReduceBytes
            link = 2 * Double(report.tp - 1) / Double(report.tp) * Double(bytes) / raw.min
        }
        if needLink && link == 0 {
            throw CLIError.input("\(path) has no allreduce (bench ran at tp=1) — run bench at tp ≥ 2 for a link rate")
        }
        return MeasuredRates(sgemmFlopsPerSecond: sgemm, copyBytesPerSecond: copy, allReduceBytesPerSecond: link,
                             allReduceStepLatencySeconds: 0, allReduceLargeBytes: bytes, allReduceSmallBytes: 0,
                             sgemmShape: report.ranks.first?.prefill?.sgemmShape, ranks: report.tp, cores: report.cpus)
    }

    /// The probe's sgemm shape for a forward of `tokens` tokens: x [T, hidden] · W with W
    /// [hidden, min(hidden, 4096)] (the hidden-wide projections dominate the FLOPs).
    static func probeShape(tokens: Int, config: MLAConfig) -> String {
        "\(max(tokens, 1)),\(min(config.hiddenSize, 4096)),\(config.hiddenSize)"
    }

    /// `ranks` busy ranks (plan uses min(tp, cores): rates per rank as they will run).
    static func probe(ranks: Int = 2, shape: String = "1024,1024,1024", allReduceBytes: Int = 4 << 20) throws -> MeasuredRates {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("mla-tp-rates-\(getpid()).json").path
        defer { try? FileManager.default.removeItem(atPath: file) }
        let r = MPILaunch.run(ranks: ranks, ["sweep-step", "--probe", "--probe-shape", shape,
                                                      "--probe-allreduce-bytes", "\(allReduceBytes)", "--out", file], timeout: 120)
        guard r.status == 0 else {
            throw CLIError(code: .internal, message: "the rate probe (mpirun -n \(ranks) mla-tp sweep-step --probe) failed with status \(r.status): "
                           + "\(r.stderr.split(separator: "\n").last ?? "") — check that mpirun works, or pass --rates FILE")
        }
        return try load(file)
    }
}

/// Child `mpirun` jobs of this same binary, with this machine's flags.
enum MPILaunch {
    struct Result { var status: Int32; var stdout: String; var stderr: String; var seconds: Double }

    /// This executable's path.
    static var selfPath: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    /// mpirun's flags for `ranks` ranks: quiet, a timeout, one BLAS thread, root allowance and
    /// oversubscription where needed, plus `extra`.
    static func flags(ranks: Int, timeout: Int, extra: [String] = []) -> [String] {
        var f = ["-q", "-n", "\(ranks)", "--timeout", "\(timeout)", "-x", "OPENBLAS_NUM_THREADS=1"]
        if getuid() == 0 { f.append("--allow-run-as-root") }
        if ranks > ProcessInfo.processInfo.activeProcessorCount { f.append("--oversubscribe") }
        return f + extra
    }

    /// `mpirun … mla-tp args…`; `onTick` is called about once a second while it runs.
    static func run(ranks: Int, _ args: [String], timeout: Int, mpirunFlags: [String] = [],
                    onTick: ((Double) -> Void)? = nil) -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["mpirun"] + flags(ranks: ranks, timeout: timeout, extra: mpirunFlags) + [selfPath] + args
        var env = ProcessInfo.processInfo.environment
        env["SWIFT_BACKTRACE"] = "enable=no"
        process.environment = env
        let outPipe = Pipe(), errPipe = Pipe()
        process.standardOutput = outPipe
        process.standardError = errPipe
        process.standardInput = FileHandle.nullDevice
        let out = Box(), err = Box()
        let group = DispatchGroup()
        for (pipe, box) in [(outPipe, out), (errPipe, err)] {
            group.enter()
            DispatchQueue.global().async {
                box.data = pipe.fileHandleForReading.readDataToEndOfFile()
                group.leave()
            }
        }
        let start = Date()
        do { try process.run() } catch {
            return Result(status: -1, stdout: "", stderr: "could not start mpirun: \(error)", seconds: 0)
        }
        var lastTick = 0.0
        while process.isRunning {
            usleep(50_000)
            let t = Date().timeIntervalSince(start)
            if t - lastTick >= 1 { onTick?(t); lastTick = t }
        }
        process.waitUntilExit()
        group.wait()
        return Result(status: process.terminationStatus, stdout: String(decoding: out.data, as: UTF8.self),
                      stderr: String(decoding: err.data, as: UTF8.self), seconds: Date().timeIntervalSince(start))
    }

    final class Box: @unchecked Sendable { var data = Data() }
}
