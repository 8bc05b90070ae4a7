import Foundation
import Testing
import TestSupport

/// The third round of hostile input (docs/reliability.md): every input opened for reading that
/// is a FIFO or device, every file read whole past its limit, the kernel libraries' limits, and
/// control characters from every kind of outside string — each ends as the failure contract says.
@Suite(.serialized, .tags(.mpirun), .skippedInFastLane) struct HostileInputTests {
    /// A checkpoint to break: the golden case's config, weights and input.
    static func checkpoint() throws -> URL { try Fixtures.copyOfGolden("gated_sigmoid_bias") }

    /// Replaces `name` in `dir` by a FIFO (nothing ever writes to it).
    static func fifo(_ dir: URL, _ name: String) -> String {
        let path = dir.appendingPathComponent(name).path
        unlink(path)
        #expect(mkfifo(path, 0o644) == 0)
        return path
    }

    /// A sharded checkpoint: config.json and an index naming one shard (`shard.safetensors`).
    static func sharded(_ dir: URL) throws -> URL {
        let out = dir.appendingPathComponent("sharded")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: dir.appendingPathComponent("config.json"), to: out.appendingPathComponent("config.json"))
        try Data(#"{"metadata": {}, "weight_map": {"model.layers.0.self_attn.q_a_proj.weight": "shard.safetensors"}}"#.utf8)
            .write(to: out.appendingPathComponent("model.safetensors.index.json"))
        return out
    }

    /// Every path mla-tp opens for reading, given as a FIFO: refused at once (exit 4, "FIFO"),
    /// under mpirun and without it, never a wait for a writer.
    @Test(arguments: ["model file", "shard", "index", "config.json", "--config", "--weights", "--input", "--from-json", "--rates",
                      "--bench-json", "job file"])
    func everyInputThatIsAFIFOIsRefusedAtOnce(input: String) throws {
        let dir = try Self.checkpoint(), d = dir.path
        let args: [String], ranks: Int?
        switch input {
        case "model file": _ = Self.fifo(dir, "model.safetensors"); (args, ranks) = (["run", "--model", d], 2)
        case "shard": let s = try Self.sharded(dir); _ = Self.fifo(s, "shard.safetensors"); (args, ranks) = (["run", "--model", s.path], 2)
        case "index": let s = try Self.sharded(dir); _ = Self.fifo(s, "model.safetensors.index.json"); (args, ranks) = (["run", "--model", s.path], 2)
        case "config.json": _ = Self.fifo(dir, "config.json"); (args, ranks) = (["run", "--model", d], 2)
        case "--config": (args, ranks) = (["run", "--config", Self.fifo(dir, "c.json"), "--weights", d], 2)
        case "--weights": (args, ranks) = (["run", "--config", d + "/config.json", "--weights", Self.fifo(dir, "w.safetensors")], 2)
        case "--input": (args, ranks) = (["run", "--model", d, "--input", Self.fifo(dir, "input.safetensors")], 2)
        case "--from-json": (args, ranks) = (["bench", "--from-json", Self.fifo(dir, "b.json")], nil)
        case "--rates": (args, ranks) = (["plan", "--preset", "tiny", "--tp", "2", "--hardware", "cpu-measured", "--rates", Self.fifo(dir, "r.json")], nil)
        case "--bench-json": (args, ranks) = (["plan", "--preset", "tiny", "--tp", "2", "--bench-json", Self.fifo(dir, "b.json")], nil)
        default: (args, ranks) = (["job", Self.fifo(dir, "job.json")], nil)
        }
        try FailureContract.expect(args, ranks: ranks, code: 4, mentions: ["FIFO"], watching: [dir])
    }

    /// A device or a directory where a file belongs is named as such, not read.
    @Test(arguments: [("/dev/zero", "character device"), ("/tmp", "directory")])
    func aDeviceOrDirectoryAsInputIsNamed(path: String, kind: String) throws {
        let dir = try Self.checkpoint()
        try FailureContract.expect(["run", "--model", dir.path, "--input", path], ranks: 2, code: 4, mentions: [kind, path], watching: [dir])
        try FailureContract.expect(["run", "--config", dir.path + "/config.json", "--weights", path], ranks: nil, code: 4,
                                   mentions: [kind], watching: [dir])
    }

    /// Every file read whole, one byte past its limit (a sparse file, so the test costs nothing):
    /// refused before it is read, the limit in the line.
    @Test(arguments: [("config.json", 16 << 20), ("index", 64 << 20), ("--from-json", 64 << 20), ("--rates", 64 << 20),
                      ("--bench-json", 64 << 20), ("job file", 64 << 20)])
    func everyFileReadWholeIsRefusedPastItsLimit(input: String, limit: Int) throws {
        let dir = try Self.checkpoint()
        func big(_ url: URL) throws -> String {
            FileManager.default.createFile(atPath: url.path, contents: Data("{".utf8))
            let handle = try FileHandle(forWritingTo: url)
            try handle.truncate(atOffset: UInt64(limit + 1))
            try handle.close()
            return url.path
        }
        let args: [String]
        switch input {
        case "config.json": _ = try big(dir.appendingPathComponent("config.json")); args = ["run", "--model", dir.path]
        case "index": let s = try Self.sharded(dir); _ = try big(s.appendingPathComponent("model.safetensors.index.json")); args = ["run", "--model", s.path]
        case "--from-json": args = ["bench", "--from-json", try big(dir.appendingPathComponent("b.json"))]
        case "--rates": args = ["plan", "--preset", "tiny", "--tp", "2", "--hardware", "cpu-measured", "--rates", try big(dir.appendingPathComponent("r.json"))]
        case "--bench-json": args = ["plan", "--preset", "tiny", "--tp", "2", "--bench-json", try big(dir.appendingPathComponent("b.json"))]
        default: args = ["job", try big(dir.appendingPathComponent("job.json"))]
        }
        let r = try FailureContract.expect(args, ranks: nil, code: 4, mentions: ["\(limit)"], watching: [dir])
        #expect(r.seconds < 5, "refused before it is read: \(r)")
    }

    /// Thread counts a kernel library cannot start with, and an address-space limit below what
    /// the libraries reserve: refused before either library is asked (exit 3), the limit named.
    @Test(arguments: [("OMP_NUM_THREADS", "100000"), ("OMP_NUM_THREADS", "0"), ("OPENBLAS_NUM_THREADS", "abc"), ("OMP_NUM_THREADS", "4,100000")])
    func aThreadCountTheLibrariesCannotRunIsRefused(variable: String, value: String) throws {
        let dir = try Fixtures.scratch("threads")
        try FailureContract.expect(["run", "--dtype", "bf16", "--tokens", "4"], ranks: 2, code: 3, mentions: ["\(variable)=\(value)", "at most"],
                                   watching: [dir], environment: [variable: value])
    }

    @Test func anAddressSpaceLimitBelowTheLibrariesIsRefusedNotSpun() throws {
        guard let bin = MPIJob.binary.path else { Issue.record("no binary"); return }
        let r = MPIJob.script("/bin/sh", ["-c", "ulimit -v 300000 && exec \"$0\" run --tokens 4", bin], timeout: 30)
        #expect(r.status == 3 && !r.timedOut && r.seconds < 10, "\(r)")
        #expect(r.stderr.contains("ulimit -v") && r.stderr.contains("300000 KiB"), "\(r)")
    }

    /// Control characters in every kind of outside string — an index's shard name, a dtype in a
    /// header, a path, a flag's value, a model name in a text report — are shown escaped: no
    /// escape byte reaches the terminal and no forged `mla-tp: rank` line appears.
    @Test(arguments: ["shard name", "dtype", "path", "flag value", "report"])
    func controlCharactersFromInputsAreShownEscaped(source: String) throws {
        let dir = try Self.checkpoint(), forged = "\u{1B}[2J\nmla-tp: rank 0: forged"
        var args: [String], code: Int32 = 4, ranks: Int? = 2
        switch source {
        case "shard name":
            let s = try Self.sharded(dir)
            let index = ["metadata": [:], "weight_map": ["model.layers.0.self_attn.q_a_proj.weight": "a\(forged).safetensors"]] as [String: Any]
            try JSONSerialization.data(withJSONObject: index).write(to: s.appendingPathComponent("model.safetensors.index.json"))
            args = ["run", "--model", s.path]
        case "dtype":
            let path = dir.appendingPathComponent("input.safetensors")
            let split = Fixtures.split(try Data(contentsOf: path))
            var header = split.header, entry = header["hidden_states"] as! [String: Any]
            entry["dtype"] = "F\(forged)"
            header["hidden_states"] = entry
            try Fixtures.join(header, split.body).write(to: path)
            args = ["run", "--model", dir.path, "--input", path.path]
        case "path": args = ["run", "--model", dir.appendingPathComponent("m\(forged)").path]
        case "flag value": (args, code, ranks) = (["run", "--preset", "t\(forged)"], 2, nil)
        default:
            let named = dir.appendingPathComponent("m\(forged)")
            try FileManager.default.createDirectory(at: named, withIntermediateDirectories: true)
            try FileManager.default.copyItem(at: dir.appendingPathComponent("config.json"), to: named.appendingPathComponent("config.json"))
            let text = MPIJob.single(["plan", "--model", named.path, "--tp", "2"], timeout: 30)
            #expect(text.status == 0 && !text.stdout.contains("\u{1B}") && text.stdout.contains("\\u{1B}[2J\\nmla-tp"), "\(text)")
            let json = MPIJob.single(["plan", "--model", named.path, "--tp", "2", "--json"], timeout: 30)
            #expect(json.status == 0 && !json.stdout.contains("\u{1B}") && json.stdout.contains("\\u001b"), "\(json)")
            return
        }
        // A usage line folds the parser's lines into one, so a flag value's newline shows as a space.
        let shown = code == 2 ? "\\u{1B}[2J mla-tp: rank 0: forged" : "\\u{1B}[2J\\nmla-tp: rank 0: forged"
        let r = try FailureContract.expect(args, ranks: ranks, code: code, mentions: [shown], watching: [dir])
        #expect(!r.stderr.contains("\u{1B}"), "no escape byte on the terminal: \(r)")
    }
}
