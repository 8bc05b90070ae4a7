import Foundation
import Testing
import TestSupport

/// An output that is the same file as an input (however it is named), or an existing file that
/// is not a regular one, is refused before any work: exit 2, every input byte for byte as it was.
@Suite(.serialized, .tags(.mpirun), .skippedInFastLane) struct OutputConflictTests {
    /// `path` spelled relative to this process's working directory (the one mpirun inherits).
    static func relative(_ path: String) -> String {
        let depth = FileManager.default.currentDirectoryPath.split(separator: "/").count
        return String(repeating: "../", count: depth) + path.dropFirst()
    }

    /// Every way to name a checkpoint's or an input's file: the path itself, relative, with `./`
    /// and `..` detours, a symlink, a hard link; the input, config.json and model.safetensors.
    @Test func everyNameOfAnInputIsRefusedAsTheOutput() throws {
        let dir = try Fixtures.copyOfGolden("gated_sigmoid_bias")
        func at(_ name: String) -> String { dir.appendingPathComponent(name).path }
        try FileManager.default.createDirectory(atPath: at("sub"), withIntermediateDirectories: false)
        try FileManager.default.createSymbolicLink(atPath: at("link.safetensors"), withDestinationPath: at("input.safetensors"))
        try FileManager.default.linkItem(atPath: at("input.safetensors"), toPath: at("hard.safetensors"))
        try FileManager.default.createSymbolicLink(atPath: at("weights-link"), withDestinationPath: at("model.safetensors"))
        let names = [
            at("input.safetensors"), Self.relative(at("input.safetensors")), dir.path + "/./input.safetensors",
            at("sub") + "/../input.safetensors", at("link.safetensors"), at("hard.safetensors"),
            at("config.json"), at("model.safetensors"), Self.relative(at("model.safetensors")), at("weights-link"),
        ]
        for name in names {
            try FailureContract.expect(["run", "--model", dir.path, "--input", at("input.safetensors"), "--output", name], code: 2,
                                       mentions: ["same file", name], watching: [dir])
        }
        // The same checkpoint named by --config and --weights.
        try FailureContract.expect(["run", "--config", at("config.json"), "--weights", at("weights-link"), "--output", at("model.safetensors")],
                                   code: 2, mentions: ["same file"], watching: [dir])
        // sweep-step's --out as well.
        try FailureContract.expect(["sweep-step", "--model", dir.path, "--out", at("config.json")], code: 2, mentions: ["same file"], watching: [dir])
    }

    /// A sharded checkpoint: its index and every shard file it lists.
    @Test func theIndexAndEveryShardOfACheckpointAreRefusedAsTheOutput() throws {
        let dir = try Fixtures.copyOfGolden("hf_sharded_index")
        let shards = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix("model-") }
        #expect(shards.count >= 2)
        for name in ["model.safetensors.index.json"] + shards {
            try FailureContract.expect(["run", "--model", dir.path, "--input", dir.appendingPathComponent("input.safetensors").path,
                                        "--output", dir.appendingPathComponent(name).path], code: 2, mentions: ["same file", name], watching: [dir])
        }
    }

    /// A directory, a FIFO, a character device (a null device made beside the test, never
    /// /dev/null itself) and a symlink to one are never replaced by a regular file.
    @Test func anExistingOutputThatIsNotARegularFileIsRefused() throws {
        let dir = try Fixtures.scratch("special")
        func at(_ name: String) -> String { dir.appendingPathComponent(name).path }
        try FileManager.default.createDirectory(atPath: at("directory"), withIntermediateDirectories: false)
        #expect(mkfifo(at("fifo"), 0o644) == 0)
        try FileManager.default.createSymbolicLink(atPath: at("fifo-link"), withDestinationPath: at("fifo"))
        var cases = [("directory", "a directory"), ("fifo", "a FIFO"), ("fifo-link", "a FIFO")]
        // The null device, 1:3 (glibc packs a small major, minor pair as major << 8 | minor).
        if mknod(at("null"), S_IFCHR | 0o666, dev_t(1 << 8 | 3)) == 0 { cases.append(("null", "a character device")) }
        for (name, kind) in cases {
            try FailureContract.expect(["run", "--output", at(name)], code: 2, mentions: [at(name), kind], watching: [dir])
        }
    }

    /// `init --out` that cannot name a checkpoint directory, or one whose files cannot be
    /// replaced whole: a usage error with a plain message, nothing created or changed.
    @Test func initTargetsThatCannotHoldACheckpointAreUsageErrors() throws {
        let dir = try Fixtures.scratch("init-target")
        func at(_ name: String) -> String { dir.appendingPathComponent(name).path }
        try Data("a file".utf8).write(to: URL(fileURLWithPath: at("afile")))
        try FileManager.default.createDirectory(atPath: at("ckpt/model.safetensors"), withIntermediateDirectories: true)
        try Data("{}".utf8).write(to: URL(fileURLWithPath: at("ckpt/config.json")))
        try FileManager.default.createDirectory(atPath: at("sharded"), withIntermediateDirectories: false)
        try Data("{}".utf8).write(to: URL(fileURLWithPath: at("sharded/model.safetensors.index.json")))
        let cases: [(String, [String])] = [
            ("", ["--out is empty"]), (at("afile"), ["is an existing file"]), (at("afile") + "/sub", ["is a file, not a directory"]),
            (at("missing") + "/sub", ["does not exist"]), (at("ckpt"), ["a directory, not a regular file"]),
            (at("sharded"), ["model.safetensors.index.json", "sharded checkpoint"]),
        ]
        for (out, needles) in cases {
            let r = try FailureContract.expect(["init", "--out", out], ranks: nil, code: 2, mentions: needles,
                                               watching: [dir, dir.appendingPathComponent("ckpt"), dir.appendingPathComponent("sharded")])
            #expect(!r.stderr.contains("NSCocoaErrorDomain") && !r.stderr.contains("this is a bug"), "\(r)")
        }
    }
}
