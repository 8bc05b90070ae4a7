import Foundation
import TensorCore
import Testing

/// oneDNN fixes its instruction set once per process, so the routes under other CPUs' caps are
/// checked in child processes: `kernel-bench route` under `DNNL_MAX_CPU_ISA`, one line per route
/// (`route m relative-error kernel`).
@Suite(.serialized) struct ISACapRoutingTests {
    struct Line { var route: String; var m: Int; var error: Double; var kernel: String }

    static var cpuFlags: Set<String> {
        let info = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let flags = info.split(separator: "\n").first { $0.hasPrefix("flags") } ?? ""
        return Set(flags.split(separator: " ").map(String.init))
    }

    /// `kernel-bench` beside the test bundle in the build directory.
    static var tool: String? {
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = dir.appendingPathComponent("kernel-bench").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        return nil
    }

    static func route(cap: String?) throws -> (support: String, lines: [Line]) {
        let path = try #require(tool, "kernel-bench is not built beside the tests")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = ["route"]
        var env = ProcessInfo.processInfo.environment
        env["DNNL_MAX_CPU_ISA"] = cap
        process.environment = env
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(output)")
        var rows = output.split(separator: "\n").map { $0.split(separator: " ", maxSplits: 3).map(String.init) }
        let support = rows.removeFirst().last ?? ""
        let lines = rows.map { Line(route: $0[0], m: Int($0[1]) ?? -1, error: Double($0[2]) ?? .infinity, kernel: $0[3]) }
        #expect(lines.count == 2 * GemmRoute.allCases.count && lines.allSatisfy { $0.error < 1e-6 }, "\(output)")
        // bf16 weights take the automatic route's kernel under the route that keeps f32 on OpenBLAS.
        for m in [40, 1] { #expect(kernel(lines, "openBLASForF32", m: m) == kernel(lines, "automatic", m: m), "\(output)") }
        return (support, lines)
    }

    static func kernel(_ lines: [Line], _ route: String, m: Int) -> String {
        lines.first { $0.route == route && $0.m == m }?.kernel ?? "missing"
    }

    @Test func avx2HasNoBF16MatmulSoEveryRouteStaysCorrectThroughTheFallback() throws {
        let (support, lines) = try Self.route(cap: "AVX2")
        #expect(support == "unavailable")
        #expect(Self.kernel(lines, "automatic", m: 40) == "fallback: bf16 widened to f32, OpenBLAS sgemm (oneDNN's bf16 is unavailable on this CPU)")
        #expect(Self.kernel(lines, "oneDNN", m: 40) == "fallback: bf16 widened to f32, OpenBLAS sgemm (oneDNN: unimplemented)")
        #expect(Self.kernel(lines, "oneDNN", m: 1) == "fallback: bf16 widened to f32, OpenBLAS sgemv (oneDNN: unimplemented)")
        #expect(Self.kernel(lines, "automatic", m: 1).hasPrefix("bf16 row kernel"))
    }

    @Test(.enabled(if: cpuFlags.isSuperset(of: ["avx512f", "avx512bw", "avx512vl", "avx512dq"]), "needs AVX-512"))
    func emulatedBF16IsLeftToTheFallbackUnlessOneDNNIsAskedFor() throws {
        let (support, lines) = try Self.route(cap: "AVX512_CORE")
        #expect(support == "emulated")
        #expect(Self.kernel(lines, "automatic", m: 40) == "fallback: bf16 widened to f32, OpenBLAS sgemm (oneDNN's bf16 is emulated on this CPU)")
        #expect(Self.kernel(lines, "oneDNN", m: 40).hasPrefix("oneDNN matmul "))
        #expect(Self.kernel(lines, "openBLAS", m: 40) == "fallback: bf16 widened to f32, OpenBLAS sgemm (asked for)")
    }

    /// Only on a CPU with bf16 instructions (skipped elsewhere).
    @Test(.enabled(if: cpuFlags.contains("avx512_bf16") || cpuFlags.contains("amx_bf16"), "needs a CPU with bf16 instructions"))
    func nativeBF16GoesToOneDNN() throws {
        let (support, lines) = try Self.route(cap: nil)
        #expect(support == "native")
        #expect(Self.kernel(lines, "automatic", m: 40).hasPrefix("oneDNN matmul ") && Self.kernel(lines, "automatic", m: 40).contains("bf16"))
        #expect(Self.kernel(lines, "automatic", m: 1).hasPrefix("bf16 row kernel"))
    }
}
