import Foundation
import Testing
import MLA
import SafeTensors

/// `init`'s checkpoint is written whole or not at all.
@Suite(.serialized) struct SeededCheckpointTests {
    static func scratch() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("seeded-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        return path
    }

    /// The weights' destination turns into a directory after both files were built, just before
    /// they are linked in: neither is, so the old config.json still goes with the old weights
    /// (a config written first would now sit beside weights it does not describe).
    @Test func failureAtTheEndLeavesTheOldCheckpointWhole() throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try SeededCheckpoint.write(config: Presets.tiny, layers: 1, as: .f32, seed: 1, to: dir)
        let config = dir + "/config.json", weights = dir + "/model.safetensors"
        let oldConfig = FileManager.default.contents(atPath: config)
        AtomicFile.beforeCommit = {
            var s = stat()
            if stat(weights, &s) == 0, s.st_mode & S_IFMT == S_IFREG { unlink(weights); mkdir(weights, 0o755) }
        }
        defer { AtomicFile.beforeCommit = nil }
        #expect(throws: OutputConflict.notRegularFile(path: weights, kind: "a directory")) {
            try SeededCheckpoint.write(config: Presets.tiny, layers: 2, as: .bf16, seed: 2, to: dir)
        }
        #expect(FileManager.default.contents(atPath: config) == oldConfig, "config.json was replaced alone")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).sorted() == ["config.json", "model.safetensors"])
    }

    /// A new directory appears only with both files in it; when the build fails, it never appears.
    @Test func newDirectoryAppearsWithBothFilesOrNotAtAll() throws {
        let parent = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: parent) }
        try SeededCheckpoint.write(config: Presets.tiny, layers: 1, as: .f32, seed: 1, to: parent + "/new")
        #expect(try FileManager.default.contentsOfDirectory(atPath: parent + "/new").sorted() == ["config.json", "model.safetensors"])
        var bad = Presets.tiny
        bad.kvLoraRank = 0
        #expect(throws: ConfigError.self) { try SeededCheckpoint.write(config: bad, layers: 1, as: .f32, seed: 1, to: parent + "/never") }
        #expect(try FileManager.default.contentsOfDirectory(atPath: parent) == ["new"])
    }
}
