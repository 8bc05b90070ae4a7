import Foundation
import Testing
import TestSupport

/// Every option with a fixed set of forms rejects a value outside them as a usage error
/// (exit 2): one line that names the option and lists what it accepts.
@Suite(.serialized, .tags(.mpirun), .skippedInFastLane) struct OptionValueTests {
    static let cases: [(args: [String], mentions: [String])] = [
        (["sweep", "--tp", "1,x"], ["--tp", "comma-separated integers ≥ 1"]),
        (["sweep", "--tp", "1,0,2"], ["--tp", "comma-separated integers ≥ 1"]),
        (["sweep", "--tp", "1,,2"], ["--tp", "comma-separated integers ≥ 1"]),
        (["sweep", "--tp", ""], ["--tp", "comma-separated integers ≥ 1"]),
        (["run", "--seqs", "7,x,3"], ["--seqs", "comma-separated sequence lengths ≥ 0"]),
        (["run", "--seqs", "7,-1"], ["--seqs", "comma-separated sequence lengths ≥ 0"]),
        (["plan", "--tp", "2", "--seqs", "3;4"], ["--seqs", "comma-separated sequence lengths ≥ 0"]),
        (["sweep-step", "--probe", "--probe-shape", "1,2"], ["--probe-shape", "M,N,K"]),
        (["sweep-step", "--probe", "--probe-shape", "1,2,0"], ["--probe-shape", "M,N,K"]),
        (["sweep-step", "--probe", "--probe-shape", "1,2,3,4"], ["--probe-shape", "M,N,K"]),
        (["plan", "--tp", "2", "--hardware", "tpu"], ["--hardware", "h100, h200, cpu-measured or custom:"]),
        (["plan", "--tp", "2", "--hardware", "custom:1,2,x,4"], ["--hardware", "TFLOPS,HBM_GBps,LINK_GBps,LINK_LATENCY_us"]),
        (["run", "--preset", "gpt5"], ["--preset", "tiny, tiny-headwise", "deepseek-v3, deepseek-v2-lite"]),
        (["init", "--out", "/tmp/x", "--preset", "gpt5"], ["--preset", "tiny, tiny-headwise", "deepseek-v3, deepseek-v2-lite"]),
        (["plan", "--tp", "1", "--preset", ""], ["--preset", "tiny, tiny-headwise", "deepseek-v3, deepseek-v2-lite"]),
        (["run", "--act", "gelu"], ["--act", "'sigmoid'", "'scaled_softsign'"]),
        (["run", "--set", "hidden_size"], ["--set", "KEY=VALUE"]),
        (["run", "--set", "=5"], ["--set", "KEY=VALUE"]),
        (["run", "--gate", "diagonal"], ["--gate", "'column'"]),
        (["run", "--decode", "fast"], ["--decode", "'absorbed'"]),
        (["run", "--allreduce", "nccl"], ["--allreduce", "'auto'", "'mpi'"]),
        (["bench", "--phase", "all"], ["--phase", "'both'"]),
        (["init", "--out", "/tmp/x", "--dtype", "fp8"], ["--dtype", "'bf16'"]),
        (["run", "--quantization", "int4"], ["--quantization", "'none'", "'fp8'"]),
        (["plan", "--tp", "2", "--quantization", "FP8"], ["--quantization", "'none'", "'fp8'"]),
        (["bench", "--quantization", "awq"], ["--quantization", "'none'", "'fp8'"]),
        (["sweep", "--quantization", ""], ["--quantization", "'none'", "'fp8'"]),
        (["sweep-step", "--quantization", "e4m3"], ["--quantization", "'none'", "'fp8'"]),
        (["--quantization", "fp4"], ["--quantization", "'none'", "'fp8'"]),
        (["run", "--quantization", "fp8", "--dtype", "f32"], ["--quantization fp8", "bf16 activations", "--dtype bf16"]),
        (["plan", "--tp", "2", "--quantization", "fp8", "--dtype", "f32"], ["--quantization fp8", "bf16 activations"]),
        (["bench", "--quantization", "fp8", "--dtype", "f32"], ["--quantization fp8", "bf16 activations"]),
        // --kv-cache-dtype on every command that builds or plans a cache, the default command included.
        (["--kv-cache-dtype", "fp4"], kvCacheDTypes),
        (["run", "--kv-cache-dtype", "e4m3"], kvCacheDTypes),
        (["bench", "--kv-cache-dtype", "FP8"], kvCacheDTypes),
        (["sweep", "--kv-cache-dtype", "int8"], kvCacheDTypes),
        (["sweep-step", "--kv-cache-dtype", ""], kvCacheDTypes),
        (["plan", "--tp", "2", "--kv-cache-dtype", "f16"], kvCacheDTypes),
    ]
    static let kvCacheDTypes = ["--kv-cache-dtype", "'auto'", "'f32'", "'bf16'", "'fp8'"]

    @Test(arguments: cases.indices)
    func aValueOutsideTheFormsIsAUsageErrorThatListsThem(index: Int) {
        let (args, mentions) = Self.cases[index]
        let r = MPIJob.single(args, timeout: 30)
        #expect(r.status == 2, "\(args): \(r)")
        let lines = r.stderr.split(separator: "\n").filter { $0.hasPrefix("mla-tp: rank 0:") }
        #expect(lines.count == 1 && lines[0].contains(" — "), "\(args): one line, what happened — what to do: \(r)")
        for needle in mentions { #expect(r.stderr.contains(needle), "\(args): should mention \(needle): \(r)") }
        #expect(r.stdout.isEmpty, "\(args): \(r)")
    }

    /// The build under test is this tree's, and a binary from another tree would be refused.
    @Test func theBinaryUnderTestWasBuiltFromThisTree() throws {
        #expect(MPIJob.binary.problem == nil, "\(MPIJob.binary.problem ?? "")")
        let dir = try Fixtures.scratch("stale")
        defer { try? FileManager.default.removeItem(at: dir) }
        let fake = dir.appendingPathComponent("mla-tp").path
        try "#!/bin/sh\necho 'mla-tp tree 0123456789abcdef'\n".write(toFile: fake, atomically: true, encoding: .utf8)
        chmod(fake, 0o755)
        let problem = try #require(MPIJob.provenanceProblem(of: fake, build: "rebuild"), "a binary from another tree was accepted")
        #expect(problem.contains("0123456789abcdef") && problem.contains("rebuild"))
    }
}
