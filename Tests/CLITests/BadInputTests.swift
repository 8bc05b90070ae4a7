import Foundation
import Testing
import TestSupport

/// Every bad input ends the whole job within 10 s with one line, the documented exit code,
/// and no output written (an existing output file is left untouched).
@Suite(.serialized, .tags(.mpirun), .skippedInFastLane) struct BadInputTests {
    /// Runs `args` (with `--output` into `dir`, an existing one when `existingOutput`) and checks
    /// the failure contract (`FailureContract`): `dir` is left exactly as it was.
    func expectFailure(_ args: [String], in dir: URL, ranks: Int = 2, code: Int32, mentions needles: [String],
                       existingOutput: Bool, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let out = dir.appendingPathComponent("out.safetensors")
        if existingOutput { try Data("previous result".utf8).write(to: out) }
        try FailureContract.expect(args + ["--output", out.path], ranks: ranks, code: code, mentions: needles, watching: [dir],
                                   sourceLocation: sourceLocation)
    }

    /// A copy of a golden checkpoint whose model.safetensors is rewritten by `edit`.
    func corrupted(_ edit: (inout [String: Any], inout Data) -> Void) throws -> URL {
        let dir = try Fixtures.copyOfGolden("gated_sigmoid_bias")
        let path = dir.appendingPathComponent("model.safetensors")
        var (header, body) = Fixtures.split(try Data(contentsOf: path))
        edit(&header, &body)
        try Fixtures.join(header, body).write(to: path)
        return dir
    }

    func model(_ dir: URL) -> [String] { ["run", "--model", dir.path, "--input", dir.appendingPathComponent("input.safetensors").path] }
    static let qa = "model.layers.0.self_attn.q_a_proj.weight"
    static let gate = "model.layers.0.self_attn.gate.weight"

    @Test func missingCheckpointDirectory() throws {
        let dir = try Fixtures.scratch("missing")
        try expectFailure(["run", "--model", dir.appendingPathComponent("nope").path], in: dir, code: 4,
                          mentions: ["nope/config.json"], existingOutput: true)
    }

    @Test func missingInputFile() throws {
        let dir = try Fixtures.copyOfGolden("gated_sigmoid_bias")
        try expectFailure(["run", "--model", dir.path, "--input", dir.appendingPathComponent("absent.safetensors").path],
                          in: dir, code: 4, mentions: ["absent.safetensors"], existingOutput: false)
    }

    @Test func truncatedSafetensors() throws {
        let dir = try Fixtures.copyOfGolden("gated_sigmoid_bias")
        let path = dir.appendingPathComponent("model.safetensors")
        let data = try Data(contentsOf: path)
        try data.prefix(data.count / 2).write(to: path)
        try expectFailure(model(dir), in: dir, code: 4, mentions: ["model.safetensors"], existingOutput: true)
    }

    @Test func headerLengthBeyondTheFile() throws {
        let dir = try Fixtures.copyOfGolden("gated_sigmoid_bias")
        let path = dir.appendingPathComponent("model.safetensors")
        var data = try Data(contentsOf: path)
        withUnsafeBytes(of: UInt64(data.count * 4).littleEndian) { data.replaceSubrange(0..<8, with: $0) }
        try data.write(to: path)
        try expectFailure(model(dir), in: dir, code: 4, mentions: ["model.safetensors", "\(data.count * 4)"], existingOutput: false)
    }

    @Test func headerThatIsNotJSON() throws {
        let dir = try Fixtures.copyOfGolden("gated_sigmoid_bias")
        let path = dir.appendingPathComponent("model.safetensors")
        var data = try Data(contentsOf: path)
        data.replaceSubrange(8..<12, with: Data("nope".utf8))
        try data.write(to: path)
        try expectFailure(model(dir), in: dir, code: 4, mentions: ["model.safetensors", "JSON"], existingOutput: true)
    }

    @Test func offsetsOutOfRange() throws {
        let dir = try corrupted { header, body in
            var entry = header[Self.qa] as! [String: Any]
            entry["data_offsets"] = [body.count - 16, body.count + 8176]
            header[Self.qa] = entry
        }
        try expectFailure(model(dir), in: dir, code: 4, mentions: [Self.qa], existingOutput: false)
    }

    @Test func overlappingTensors() throws {
        let dir = try corrupted { header, _ in
            let other = (header[Self.gate] as! [String: Any])["data_offsets"] as! [Int]
            var entry = header[Self.qa] as! [String: Any]
            let mine = entry["data_offsets"] as! [Int]
            entry["data_offsets"] = [other[0], other[0] + mine[1] - mine[0]]
            header[Self.qa] = entry
        }
        try expectFailure(model(dir), in: dir, code: 4, mentions: ["overlap"], existingOutput: true)
    }

    @Test func dtypeShapeByteLengthMismatch() throws {
        let dir = try corrupted { header, _ in
            var entry = header[Self.qa] as! [String: Any]
            entry["dtype"] = "BF16"
            header[Self.qa] = entry
        }
        try expectFailure(model(dir), in: dir, code: 4, mentions: [Self.qa], existingOutput: false)
    }

    @Test func unknownDtype() throws {
        let dir = try corrupted { header, _ in
            var entry = header[Self.qa] as! [String: Any]
            entry["dtype"] = "F12"
            header[Self.qa] = entry
        }
        try expectFailure(model(dir), in: dir, code: 4, mentions: ["F12"], existingOutput: true)
    }

    @Test func missingTensorNamesItAndTheFilesSearched() throws {
        // Renamed, so that its bytes still belong to a tensor.
        let dir = try corrupted { header, _ in header[Self.gate + "_renamed"] = header.removeValue(forKey: Self.gate) }
        try expectFailure(model(dir), in: dir, code: 4, mentions: [Self.gate, "model.safetensors"], existingOutput: false)
    }

    @Test func wrongTensorShapeGivesExpectedAndFound() throws {
        let dir = try corrupted { header, _ in
            var entry = header[Self.qa] as! [String: Any]
            entry["shape"] = [64, 32]
            header[Self.qa] = entry
        }
        try expectFailure(model(dir), in: dir, code: 4, mentions: [Self.qa, "[64, 32]", "[32, 64]"], existingOutput: true)
    }

    @Test func headsNotDivisibleByTp() throws {
        let dir = try Fixtures.scratch("tp3")
        try expectFailure(["run"], in: dir, ranks: 3, code: 3, mentions: ["num_attention_heads = 8", "tp=3", "1, 2, 4, 8"],
                          existingOutput: false)
    }

    @Test func unknownActivationListsTheAllowedOnes() throws {
        let dir = try Fixtures.scratch("act")
        // A flag's value is a usage error that lists the choices; the same name in the config is a config error.
        try expectFailure(["run", "--act", "gelu"], in: dir, code: 2, mentions: ["gelu", "'sigmoid'", "'scaled_softsign'"], existingOutput: true)
        try expectFailure(["run", "--set", "gated_attn_act=gelu"], in: dir, code: 3, mentions: ["gelu", "sigmoid, scaled_softsign"],
                          existingOutput: true)
    }

    @Test func zeroOrNegativeDims() throws {
        let dir = try Fixtures.scratch("dims")
        try expectFailure(["run", "--set", "kv_lora_rank=0"], in: dir, code: 3, mentions: ["kv_lora_rank = 0"], existingOutput: false)
        try expectFailure(["run", "--set", "v_head_dim=-4"], in: dir, code: 3, mentions: ["v_head_dim = -4"], existingOutput: true)
    }

    @Test func nonFiniteInputNamesTheToken() throws {
        let dir = try Fixtures.copyOfGolden("gated_sigmoid_bias")
        let path = dir.appendingPathComponent("input.safetensors")
        var (header, body) = Fixtures.split(try Data(contentsOf: path))
        let begin = ((header["hidden_states"] as! [String: Any])["data_offsets"] as! [Int])[0]
        let at = begin + 4 * (3 * 64 + 10)   // token 3, column 10
        withUnsafeBytes(of: Float.infinity) { body.replaceSubrange(at ..< at + 4, with: $0) }
        try Fixtures.join(header, body).write(to: path)
        try expectFailure(model(dir), in: dir, code: 4, mentions: ["token 3", "inf"], existingOutput: false)
    }

    @Test func tokensThatCannotFitAreRefusedWithTheEstimate() throws {
        let dir = try Fixtures.scratch("huge")
        try expectFailure(["run", "--preset", "deepseek-v3", "--tokens", "2000000"], in: dir, code: 3,
                          mentions: ["--tokens 2000000", "GB", "use at most"], existingOutput: true)
    }

    @Test func unknownPresetAndGateLayout() throws {
        let dir = try Fixtures.scratch("names")
        try expectFailure(["run", "--preset", "gpt5"], in: dir, code: 2, mentions: ["gpt5", "tiny, tiny-headwise", "deepseek-v3, deepseek-v2-lite"],
                          existingOutput: false)
        try expectFailure(["run", "--gate", "diagonal"], in: dir, code: 2, mentions: ["diagonal", "column"], existingOutput: true)
    }

    @Test func layerOutOfRange() throws {
        let dir = try Fixtures.copyOfGolden("yarn_legacy_layer1")
        try expectFailure(model(dir) + ["--layer", "2"], in: dir, code: 2, mentions: ["--layer 2", "2 layers"], existingOutput: true)
    }

    @Test func nonFiniteWeightIsCaughtAtTheStageWhereItAppears() throws {
        let dir = try corrupted { header, body in
            let begin = ((header[Self.gate] as! [String: Any])["data_offsets"] as! [Int])[0]
            withUnsafeBytes(of: Float.nan) { body.replaceSubrange(begin ..< begin + 4, with: $0) }
        }
        try expectFailure(model(dir) + ["--check-stages"], in: dir, code: 5, mentions: ["stage gate", "rank 0"], existingOutput: false)
    }
}

/// A rank that dies or hangs mid-forward ends the job.
@Suite(.serialized, .tags(.mpirun), .skippedInFastLane) struct FaultTests {
    /// The killed rank says nothing; mpirun ends the job with the rank's signal, before any output.
    @Test func rankKilledMidForwardEndsTheJobWithinTenSeconds() {
        let r = MPIJob.run(ranks: 2, ["run"], timeout: 30, environment: ["MLATP_FAULT": "kill"])
        #expect(r.status == MPIRunExit.signaled(SIGKILL) && !r.timedOut && r.seconds < 10, "\(r)")
        #expect(!r.stdout.contains("mla-tp: model") && !r.stdout.contains("PASS"), "no report from a killed job: \(r)")
    }

    /// An error only one rank sees, while the others wait in o_proj's allreduce: that rank
    /// prints its line and aborts the job (the others never reach the failure barrier).
    @Test func errorOnOneRankAbortsEveryRankWithItsCode() {
        let r = MPIJob.run(ranks: 4, ["run"], timeout: 30, environment: ["MLATP_FAULT": "error", "MLATP_FAULT_RANK": "2"])
        #expect(r.status == 4 && !r.timedOut && r.seconds < 10, "\(r)")
        #expect(r.stderr.contains("mla-tp: rank 2: injected fault"), "\(r)")
    }

    /// mpirun's own `--timeout` (5 s) ends it, not the test's backstop.
    @Test func stalledRankIsEndedByTheMpirunTimeout() {
        let r = MPIJob.run(ranks: 2, ["run"], timeout: 5, environment: ["MLATP_FAULT": "stall"])
        #expect(r.status == MPIRunExit.timedOut && !r.timedOut && r.seconds >= 5 && r.seconds < 10, "\(r)")
        #expect(!r.stdout.contains("PASS"), "\(r)")
    }
}
