import Foundation
import Report
import Testing
import TestSupport

/// Messages and exit classes: one line per failure whatever the number of ranks, usage errors
/// about the flag that is wrong (negative-looking values included), every line with its own
/// "— what to do", and files parsed as the reference implementations parse them.
@Suite(.serialized, .tags(.mpirun), .skippedInFastLane) struct MessageTests {
    /// Every numeric flag of every subcommand given a negative-looking value: the message names
    /// the flag and the rule (the parser would otherwise take "-1" for a flag: "Missing value").
    static let negatives: [[String]] = [
        ["run", "--tokens", "-1"], ["run", "--layer", "-1"], ["run", "--seqs", "-1,2"], ["run", "--decode-steps", "-2"],
        ["run", "--decode-steps=-2"], ["run", "--prefill-chunk", "0"], ["run", "--prefill-chunk", "-1"], ["run", "--seed", "-1"],
        ["plan", "--tp", "-1"], ["plan", "--tp", "8", "--tokens", "-1"], ["plan", "--tp", "8", "--seqs", "-3"],
        ["linear", "--tokens", "-1"], ["linear", "--input", "-1"], ["linear", "--hidden", "-1"], ["linear", "--output", "-1"],
        ["init", "--out", "/nonexistent/x", "--layers", "-1"], ["init", "--out", "/nonexistent/x", "--seed", "-1"],
        ["bench", "--tokens", "-1"], ["bench", "--repeat", "-1"], ["bench", "--warmup", "-1"], ["bench", "--batch", "-1"],
        ["bench", "--copy-mib", "-1"],
        ["sweep", "--tp", "-1"], ["sweep", "--tokens", "-1"], ["sweep", "--repeats", "-1"], ["sweep", "--decode-context", "-1"],
        ["sweep", "--check-tokens", "-1"], ["sweep", "--timeout", "-1"], ["sweep", "--max-wait", "-1"],
        ["sweep-step", "--tokens", "-1"], ["sweep-step", "--context", "-1"], ["sweep-step", "--repeats", "-1"],
        ["sweep-step", "--probe-allreduce-bytes", "-1"], ["sweep-step", "--probe-shape", "-1,2,3"],
    ]

    @Test(arguments: negatives.indices)
    func negativeLookingValueIsAUsageErrorNamingTheFlag(index: Int) throws {
        let args = Self.negatives[index]
        let flag = args.last!.hasPrefix("--") ? String(args.last!.split(separator: "=")[0]) : args[args.count - 2]
        let dir = try Fixtures.scratch("negative")
        let r = try FailureContract.expect(args, ranks: nil, code: 2, mentions: [flag], watching: [dir])
        #expect(!r.stderr.contains("Missing value") && !r.stderr.contains("cu_seqlens"), "\(r)")
    }

    /// The usage lines that lacked their own "what to do" half now have one.
    @Test(arguments: [["run", "--set", "hidden_size"], ["run", "--set", "=5"], ["run", "--config", "x"],
                      ["run", "--input", "x", "--seqs", "1"]])
    func usageMessageSaysWhatToDo(args: [String]) throws {
        let dir = try Fixtures.scratch("usage")
        let r = try FailureContract.expect(args, ranks: nil, code: 2, mentions: [], watching: [dir])
        #expect(!r.stderr.contains("see `mla-tp --help`"), "its own hint, not the generic one: \(r)")
    }

    /// A non-finite value in a replicated weight is the same on every rank: one line at -n 4,
    /// and with --check-stages a hint that says every stage was checked.
    @Test(arguments: ["model.layers.0.self_attn.q_a_proj.weight", "model.layers.0.self_attn.kv_a_proj_with_mqa.weight"])
    func nanInAReplicatedWeightIsReportedOnce(tensor: String) throws {
        let dir = try Fixtures.copyOfGolden("gated_sigmoid_bias")
        let path = dir.appendingPathComponent("model.safetensors")
        var (header, body) = Fixtures.split(try Data(contentsOf: path))
        let begin = ((header[tensor] as! [String: Any])["data_offsets"] as! [Int])[0]
        withUnsafeBytes(of: Float.nan) { body.replaceSubrange(begin ..< begin + 4, with: $0) }
        try Fixtures.join(header, body).write(to: path)
        let args = ["run", "--model", dir.path, "--input", dir.appendingPathComponent("input.safetensors").path]
        let plain = try FailureContract.expect(args, ranks: 4, code: 5, mentions: ["stage o_proj", "rerun with --check-stages"], watching: [dir])
        let staged = try FailureContract.expect(args + ["--check-stages"], ranks: 4, code: 5, mentions: ["every stage was checked"], watching: [dir])
        #expect(plain.stderr.contains("nan") && !staged.stderr.contains("rerun with --check-stages"), "\(staged)")
    }

    /// More decode steps than a sequence has tokens: the sequence decodes all of them, and the
    /// report says so instead of printing a negative count.
    @Test func decodeStepsLongerThanASequenceAreReportedAsDone() throws {
        let r = MPIJob.run(ranks: 2, ["run", "--decode-steps", "8", "--seqs", "7,1,12"], timeout: 60)
        #expect(r.status == 0 && r.stdout.contains("shorter than --decode-steps 8") && !r.stdout.contains("len−8"), "\(r)")
        #expect(r.stdout.contains("4 tokens prefilled, then 16 decoded"), "\(r)")
        let json = try MPIJob.run(ranks: 2, ["run", "--decode-steps", "8", "--seqs", "7,1,12", "--json"], timeout: 60).decoded(RunReport.self)
        #expect(json.serving?.prefillTokens == 4 && json.serving?.decodeTokens == 16 && json.serving?.shorterThanDecodeSteps == [7, 1])
    }

    /// config.json as HF reads it: a fractional number where an integer belongs names the key and
    /// the type; a key given twice is refused (Python keeps the last value, Foundation the first).
    @Test func configValuesAreJudgedByKey() throws {
        for (edit, code, needles): ((String) -> String, Int32, [String]) in [
            ({ $0.replacingOccurrences(of: "\"hidden_size\": 64", with: "\"hidden_size\": 256.5") }, 3, ["\"hidden_size\"", "must be an integer"]),
            ({ $0.replacingOccurrences(of: "\"hidden_size\": 64,", with: "\"hidden_size\": 64, \"hidden_size\": 128,") }, 4,
             ["\"hidden_size\"", "appears more than once"]),
            ({ $0.replacingOccurrences(of: "\"rope_scaling\": null", with: "\"rope_scaling\": {\"type\": \"yarn\", \"factor\": 2, \"factor\": 4}") }, 4,
             ["\"factor\"", "appears more than once"]),
        ] {
            let dir = try Fixtures.copyOfGolden("gated_sigmoid_bias")
            let path = dir.appendingPathComponent("config.json")
            let text = try String(contentsOf: path, encoding: .utf8)
            #expect(edit(text) != text)
            try edit(text).write(to: path, atomically: true, encoding: .utf8)
            let r = try FailureContract.expect(["run", "--model", dir.path], code: code, mentions: needles, watching: [dir])
            #expect(!r.stderr.contains("not valid JSON"), "\(r)")
        }
    }

    /// Bytes of a safetensors data section that belong to no tensor, after the last one or
    /// between two, are refused as the safetensors library refuses them.
    @Test func safetensorsBytesOutsideEveryTensorAreRefused() throws {
        for gap in [false, true] {
            let dir = try Fixtures.copyOfGolden("gated_sigmoid_bias")
            let path = dir.appendingPathComponent("model.safetensors")
            var (header, body) = Fixtures.split(try Data(contentsOf: path))
            if gap {       // every tensor moved 8 bytes on: a hole before the first one
                for (name, value) in header where name != "__metadata__" {
                    var entry = value as! [String: Any]
                    entry["data_offsets"] = (entry["data_offsets"] as! [Int]).map { $0 + 8 }
                    header[name] = entry
                }
                body = Data(count: 8) + body
            } else {
                body += Data(count: 16)
            }
            try Fixtures.join(header, body).write(to: path)
            try FailureContract.expect(["run", "--model", dir.path], code: 4, mentions: [path.path, "belong to no tensor"], watching: [dir])
        }
    }
}
