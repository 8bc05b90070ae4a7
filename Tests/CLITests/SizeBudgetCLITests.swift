import Foundation
import Testing
import TestSupport

/// Every size that reaches an allocation, in every subcommand and from every source (flags,
/// `--set`, a checkpoint's config.json, an input file's header), goes through the budget first:
/// exit 3 naming the size and the limit, before anything proportional to it is allocated (so
/// the job ends in a second instead of trapping, aborting on a failed allocation or growing
/// until mpirun's timeout), and nothing is written.
@Suite(.serialized, .tags(.mpirun), .skippedInFastLane) struct SizeBudgetCLITests {
    static let huge = "9223372036854775807"      // Int.max: every product with it overflows

    /// (arguments, ranks (nil: a plain process), what the message must name)
    static let flagCases: [([String], Int?, [String])] = [
        // run: the seeded input's sizes, plain and served through the cache
        (["run", "--tokens", huge], 2, ["--tokens \(huge)", "overflows", "use at most"]),
        (["run", "--tokens", "100000000000"], 2, ["--tokens 100000000000", "GB", "use at most"]),
        (["run", "--tokens", "2000000000"], 2, ["--tokens 2000000000", "GB", "use at most"]),
        (["run", "--preset", "deepseek-v3", "--tokens", "4000000"], 2, ["--tokens 4000000", "GB", "use at most"]),
        (["run", "--tokens", "100000000", "--decode-steps", "2"], 2, ["--tokens 100000000", "GB"]),
        (["run", "--seqs", "\(huge),1"], 2, ["--seqs \(huge),1", "overflows"]),
        (["run", "--seqs", "2000000000,7"], 2, ["--seqs", "GB", "use at most"]),
        // run: sizes from the config (--set), before any weight is made
        (["run", "--set", "hidden_size=1048576", "--set", "q_lora_rank=1048576"], 2, ["the weights of tiny", "GB"]),
        // plan: nothing allocated, every count checked
        (["plan", "--preset", "deepseek-v3", "--tp", "8", "--tokens", "100000000"], nil, ["--tokens 100000000", "overflows", "use at most"]),
        (["plan", "--tp", "1", "--tokens", huge], nil, ["--tokens \(huge)", "use at most"]),
        (["plan", "--tp", "1", "--seqs", "\(huge),\(huge)"], nil, ["--seqs", "overflows"]),
        (["plan", "--tp", "8", "--set", "num_attention_heads=65536", "--set", "qk_nope_head_dim=1048576", "--set", "v_head_dim=1048576",
          "--tokens", "100000"], nil, ["--tokens 100000", "overflows"]),
        // linear: each dimension, and the tokens
        (["linear", "--tokens", huge], 2, ["--tokens \(huge)", "use at most"]),
        (["linear", "--tokens", "100000", "--input", "100000", "--hidden", "100000"], 2, ["--input 100000", "GB"]),
        (["linear", "--input", "100000000000"], 2, ["--input 100000000000", "use at most"]),
        (["linear", "--hidden", "100000000000"], 2, ["--hidden 100000000000", "use at most"]),
        (["linear", "--output", "100000000000"], 2, ["--output 100000000000", "use at most"]),
        // bench: tokens, the decode batch, the copy probe, the kept samples
        (["bench", "--tokens", "3000000000"], 2, ["--tokens 3000000000", "GB"]),
        (["bench", "--phase", "decode", "--batch", "1000000000000"], 2, ["--batch 1000000000000", "use at most"]),
        (["bench", "--phase", "decode", "--copy-mib", "10000000000000"], 2, ["--copy-mib 10000000000000", "use at most"]),
        (["bench", "--repeat", "1000000000000000"], 2, ["--repeat 1000000000000000", "use at most"]),
        (["bench", "--warmup", "1000000000000000"], 2, ["--warmup 1000000000000000", "use at most"]),
        (["bench", "--repeat", huge, "--warmup", huge], 2, ["--repeat \(huge)", "overflows"]),
        // sweep-step: the timed forward and the rate probe
        (["sweep-step", "--tokens", "1000000000000"], 2, ["--tokens 1000000000000", "use at most"]),
        (["sweep-step", "--context", "1000000000000"], 2, ["--context 1000000000000", "use at most"]),
        (["sweep-step", "--repeats", "1000000000000000"], 2, ["--repeats 1000000000000000", "use at most"]),
        (["sweep-step", "--probe", "--probe-shape", "1000000,1000000,1000000"], 2, ["--probe-shape 1000000,1000000,1000000"]),
        (["sweep-step", "--probe", "--probe-allreduce-bytes", "1000000000000000"], 2, ["--probe-allreduce-bytes 1000000000000000", "use at most"]),
    ]

    @Test(arguments: flagCases.indices)
    func sizeFromAFlagIsRefusedBeforeItIsAllocated(index: Int) throws {
        let (args, ranks, needles) = Self.flagCases[index]
        let dir = try Fixtures.scratch("budget")
        try FailureContract.expect(args, ranks: ranks, code: 3, mentions: needles, watching: [dir])
    }

    /// The sweep refuses each size before it starts any mpirun job or creates --out.
    @Test(arguments: [["--tokens", "1000000000000"], ["--check-tokens", "1000000000000"], ["--decode-context", "1000000000000"],
                      ["--repeats", "1000000000000000"]])
    func sweepRefusesASizeBeforeItsFirstJob(args: [String]) throws {
        let dir = try Fixtures.scratch("sweep")
        try FailureContract.expect(["sweep", "--tp", "1,2", "--out", dir.appendingPathComponent("out").path] + args, ranks: nil, code: 3,
                                   mentions: ["\(args[0]) \(args[1])"], watching: [dir])
    }

    @Test func initRefusesLayersThatDoNotFitBeforeCreatingAnything() throws {
        let dir = try Fixtures.scratch("init")
        try FailureContract.expect(["init", "--out", dir.appendingPathComponent("new").path, "--layers", "1000000"], ranks: nil, code: 3,
                                   mentions: ["--layers 1000000", "GB", "use at most"], watching: [dir])
        try FailureContract.expect(["init", "--out", dir.appendingPathComponent("new").path, "--set", "hidden_size=1048576",
                                    "--set", "q_lora_rank=1048576"], ranks: nil, code: 3, mentions: ["the weights of preset tiny"], watching: [dir])
    }

    /// A checkpoint's config.json is a source of sizes too: refused before any tensor is read
    /// (the file's tensors do not even match it, which would be an input error at the first read).
    @Test func checkpointConfigTooLargeIsRefusedBeforeItsTensorsAreRead() throws {
        let dir = try Fixtures.copyOfGolden("gated_sigmoid_bias")
        let path = dir.appendingPathComponent("config.json")
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: path)) as! [String: Any]
        config["hidden_size"] = 1 << 20
        config["q_lora_rank"] = 1 << 20
        try JSONSerialization.data(withJSONObject: config).write(to: path)
        try FailureContract.expect(["run", "--model", dir.path], code: 3, mentions: ["the weights of \(dir.path)", "GB"], watching: [dir])
    }

    /// An input file's header is a source: hidden_states [2000000000, 64] (a sparse file: 512 GB
    /// that take no disk) is refused before a byte of it is read.
    @Test func inputFileWhoseHeaderDeclaresTooManyTokensIsRefusedBeforeItIsRead() throws {
        let dir = try Fixtures.copyOfGolden("gated_sigmoid_bias")
        let input = try Fixtures.scratch("sparse").appendingPathComponent("big.safetensors")     // not watched: never read whole
        let rows = 2_000_000_000, bytes = rows * 64 * 4
        try Fixtures.join(["hidden_states": ["dtype": "F32", "shape": [rows, 64], "data_offsets": [0, bytes]]], Data()).write(to: input)
        let header = try FileManager.default.attributesOfItem(atPath: input.path)[.size] as! Int
        #expect(truncate(input.path, off_t(header + bytes)) == 0)
        try FailureContract.expect(["run", "--model", dir.path, "--input", input.path], code: 3,
                                   mentions: ["hidden_states rows of \(input.path) (\(rows))", "GB"], watching: [dir])
    }
}
