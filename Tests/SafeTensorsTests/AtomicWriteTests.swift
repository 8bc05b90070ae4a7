import Foundation
import Testing
import SafeTensors

@Suite("Atomic writes")
struct AtomicWriteTests {
    private static func smallWriter(_ value: Float) throws -> SafeTensorsWriter {
        var writer = SafeTensorsWriter(metadata: ["version": "\(value)"])
        try writer.add("w", floats: [value, value], shape: [2])
        return writer
    }

    @Test func successfulWriteReplacesTheFileAndLeavesNoTemporaryFile() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.file("model.safetensors")
        try Self.smallWriter(1).write(to: path)
        try Self.smallWriter(2).write(to: path)
        #expect(try SafeTensorsFile(path: path).readFloats("w") == [2, 2])
        #expect(try directory.contents() == ["model.safetensors"])
    }

    @Test func tensorWhoseBytesMismatchItsShapeIsRejectedAndTheExistingFileIsUnchanged() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.file("model.safetensors")
        try Self.smallWriter(1).write(to: path)
        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        var writer = try Self.smallWriter(2)
        let error = thrownError {
            try writer.add("bad", dtype: .BF16, shape: [3], bytes: [1, 2, 3, 4])
            try writer.write(to: path)
        }
        #expect(caseName(error) == "byteCountMismatch")
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == before)
        #expect(try directory.contents() == ["model.safetensors"])
    }

    @Test func missingDestinationDirectoryFailsWithoutCreatingAnything() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.file("no-such-dir/model.safetensors")
        let error = thrownError { try Self.smallWriter(1).write(to: path) }
        #expect(caseName(error) == "ioFailure")
        #expect("\(error!)".contains(path) && "\(error!)".contains("No such file or directory"))
        #expect(try directory.contents() == [])
    }

    /// The rename fails (EISDIR) only after the temporary file was fully written and
    /// fsynced, which exercises the clean-up path.
    @Test func failedRenameRemovesTheTemporaryFileAndLeavesTheDestinationAlone() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.file("model.safetensors")
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        _ = FileManager.default.createFile(atPath: path + "/keep.txt", contents: Data("keep".utf8))
        let error = thrownError { try Self.smallWriter(1).write(to: path) }
        #expect(caseName(error) == "ioFailure" && "\(error!)".contains("renaming"))
        #expect(try directory.contents() == ["model.safetensors"])
        #expect(FileManager.default.contents(atPath: path + "/keep.txt") == Data("keep".utf8))
    }
}
