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

    /// An existing directory at the destination is refused before anything is written.
    @Test func directoryAtTheDestinationIsRefusedAndLeftAlone() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.file("model.safetensors")
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        _ = FileManager.default.createFile(atPath: path + "/keep.txt", contents: Data("keep".utf8))
        let error = thrownError { try Self.smallWriter(1).write(to: path) }
        #expect(error as? OutputConflict == .notRegularFile(path: path, kind: "a directory"))
        #expect(try directory.contents() == ["model.safetensors"])
        #expect(FileManager.default.contents(atPath: path + "/keep.txt") == Data("keep".utf8))
    }

    /// Until it is committed the file has no name: a process that dies while writing (any way
    /// at all) leaves nothing behind, and a failure before the commit leaves the old file.
    @Test func fileBeingWrittenHasNoNameUntilItIsCommitted() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.file("out.bin")
        try AtomicFile.write(Data("old".utf8), to: path)
        do {
            let file = try AtomicFile(path: path)
            try file.write(Array(repeating: 7, count: 1 << 20))
            #expect(try directory.contents() == ["out.bin"], "a name appeared before the commit")
        }   // dropped without a commit
        #expect(try directory.contents() == ["out.bin"] && FileManager.default.contents(atPath: path) == Data("old".utf8))
    }

    /// The longest name a directory entry can have (255 bytes) is written; no temporary name is
    /// derived from it.
    @Test func longestNameIsWritten() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let name = String(repeating: "n", count: 255)
        for content in ["first", "second"] { try AtomicFile.write(Data(content.utf8), to: directory.file(name)) }
        #expect(try directory.contents() == [name] && FileManager.default.contents(atPath: directory.file(name)) == Data("second".utf8))
    }

    /// Files committed together appear together: into a directory created at the commit, or
    /// over existing files; when one of them cannot be linked in, none is and the new directory
    /// is removed again.
    @Test func filesCommittedTogetherAppearTogetherOrNotAtAll() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let target = directory.file("ckpt")
        func stage(_ name: String, _ text: String, in staging: String?) throws -> AtomicFile {
            let f = try AtomicFile(path: target + "/" + name, stagingDirectory: staging)
            try f.write(Array(text.utf8))
            return f
        }
        try AtomicFile.commit([stage("a", "1", in: directory.path), stage("b", "1", in: directory.path)], creatingDirectory: target)
        #expect(try FileManager.default.contentsOfDirectory(atPath: target).sorted() == ["a", "b"])
        try AtomicFile.commit([stage("a", "2", in: nil), stage("b", "2", in: nil)])
        #expect(FileManager.default.contents(atPath: target + "/a") == Data("2".utf8) && FileManager.default.contents(atPath: target + "/b") == Data("2".utf8))
        #expect(try FileManager.default.contentsOfDirectory(atPath: target).sorted() == ["a", "b"])

        let other = directory.file("other")
        let c = try AtomicFile(path: other + "/c", stagingDirectory: directory.path)
        let d = try AtomicFile(path: directory.path + "/d/e", stagingDirectory: directory.path)   // d does not exist: its link fails
        #expect(thrownError { try AtomicFile.commit([c, d], creatingDirectory: other) } != nil)
        #expect(try directory.contents() == ["ckpt"], "the failed group left nothing, not even its new directory")
    }
}
