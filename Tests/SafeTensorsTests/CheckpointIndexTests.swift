import Foundation
import Testing
import SafeTensors

@Suite("Checkpoint index")
struct CheckpointIndexTests {
    static let shard1 = "model-00001-of-00002.safetensors"
    static let shard2 = "model-00002-of-00002.safetensors"

    /// Two shards: shard 1 holds `embed` and an FP8 weight, shard 2 holds its scale and `norm`.
    static func makeCheckpoint(in directory: TemporaryDirectory) throws {
        var first = SafeTensorsWriter()
        try first.add("embed", floats: [1, 2, 3, 4, 5, 6], shape: [3, 2])
        try first.add("proj.weight", dtype: .F8_E4M3, shape: [2, 2], bytes: [0x38, 0x40, 0xB8, 0x00])
        try first.write(to: directory.file(shard1))
        var second = SafeTensorsWriter()
        try second.add("proj.weight_scale_inv", floats: [0.5], shape: [1, 1])
        try second.add("norm", floats: [7, 8], shape: [2], as: .BF16)
        try second.add("positions", ints: [0, 1, 2], shape: [3])
        try second.write(to: directory.file(shard2))
        let index = """
        {"metadata": {"total_size": 54, "format": "pt", "nested": {"x": 1}},
         "weight_map": {"embed": "\(shard1)", "proj.weight": "\(shard1)",
                        "proj.weight_scale_inv": "\(shard2)", "norm": "\(shard2)", "positions": "\(shard2)"}}
        """
        try Data(index.utf8).write(to: URL(fileURLWithPath: directory.file(CheckpointIndex.indexFileName)))
    }

    @Test func shardsAreOpenedLazilyOnlyWhenTheirTensorsAreLocated() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try Self.makeCheckpoint(in: directory)
        let checkpoint = try CheckpointIndex(path: directory.path)
        #expect(checkpoint.metadata == ["total_size": "54", "format": "pt"])
        #expect(checkpoint.tensorNames == ["embed", "norm", "positions", "proj.weight", "proj.weight_scale_inv"])
        #expect(checkpoint.openedPaths.isEmpty)
        #expect(try checkpoint.readFloats("norm") == [7, 8])
        #expect(checkpoint.openedPaths == [directory.file(Self.shard2)])
        #expect(try checkpoint.readFloats("embed", rows: 1..<3) == [3, 4, 5, 6])
        #expect(checkpoint.openedPaths == [directory.file(Self.shard1), directory.file(Self.shard2)])
        #expect(try checkpoint.readInts("positions") == [0, 1, 2])
        #expect(checkpoint.totalBytesRead == 2 * 2 + 2 * 2 * 4 + 3 * 8)
        let (file, info) = try checkpoint.locate("embed")
        #expect(file === (try checkpoint.file(at: directory.file(Self.shard1))), "shards are cached")
        #expect(info.shape == [3, 2])
    }

    @Test func fp8WeightIsDequantizedWithAScaleFromAnotherShard() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try Self.makeCheckpoint(in: directory)
        let checkpoint = try CheckpointIndex(path: directory.file(CheckpointIndex.indexFileName))
        var values = [Float](repeating: 0, count: 4)
        try values.withUnsafeMutableBufferPointer { try checkpoint.readDequantizedFP8("proj.weight", into: $0) }
        #expect(values == [0.5, 1, -0.5, 0])
    }

    @Test func missingTensorErrorListsTheFilesSearched() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try Self.makeCheckpoint(in: directory)
        let checkpoint = try CheckpointIndex(path: directory.path)
        let error = thrownError { _ = try checkpoint.locate("layers.61.ffn.w1.weight") }
        #expect(caseName(error) == "tensorNotFound")
        let message = "\(error!)"
        #expect(message.contains("'layers.61.ffn.w1.weight'"))
        for name in [CheckpointIndex.indexFileName, Self.shard1, Self.shard2] {
            #expect(message.contains(name), "message should list \(name): \(message)")
        }
    }

    @Test func singleFileCheckpointWorksAsAFileOrADirectory() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        var writer = SafeTensorsWriter(metadata: ["format": "pt"])
        try writer.add("w", floats: [1, 2], shape: [2])
        try writer.write(to: directory.file(CheckpointIndex.singleFileName))
        for path in [directory.path, directory.file(CheckpointIndex.singleFileName)] {
            let checkpoint = try CheckpointIndex(path: path)
            #expect(checkpoint.metadata == ["format": "pt"])
            #expect(checkpoint.tensorNames == ["w"])
            #expect(try checkpoint.readFloats("w") == [1, 2])
            let error = thrownError { _ = try checkpoint.locate("v") }
            #expect("\(error!)".contains(CheckpointIndex.singleFileName))
        }
    }

    @Test func missingCheckpointAndUnsafeShardNamesAreRejected() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        #expect(caseName(thrownError { _ = try CheckpointIndex(path: directory.path) }) == "checkpointNotFound")
        #expect(caseName(thrownError { _ = try CheckpointIndex(path: directory.file("x")) }) == "checkpointNotFound")
        let indexPath = directory.file(CheckpointIndex.indexFileName)
        for body in [#"{"weight_map": {"w": "../outside.safetensors"}}"#, #"{"weight_map": {"w": 3}}"#,
                     #"{"metadata": {}}"#, #"{"weight_map": "#] {
            try Data(body.utf8).write(to: URL(fileURLWithPath: indexPath))
            let error = thrownError { _ = try CheckpointIndex(path: directory.path) }
            #expect(caseName(error) == "invalidIndex" && "\(error!)".contains(indexPath), "\(body)")
        }
    }
}
