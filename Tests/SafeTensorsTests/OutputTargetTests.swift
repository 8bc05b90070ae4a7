import Foundation
import Testing
import SafeTensors

/// `OutputTarget.check`: every way to name an input is the same file; special files are refused.
@Suite("Output targets")
struct OutputTargetTests {
    @Test func everyNameOfTheSameFileIsRefused() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let input = directory.file("in.safetensors")
        try Data("input".utf8).write(to: URL(fileURLWithPath: input))
        try FileManager.default.createDirectory(atPath: directory.file("sub"), withIntermediateDirectories: false)
        try FileManager.default.createSymbolicLink(atPath: directory.file("link"), withDestinationPath: input)
        try FileManager.default.createSymbolicLink(atPath: directory.file("relative-link"), withDestinationPath: "in.safetensors")
        try FileManager.default.linkItem(atPath: input, toPath: directory.file("hard"))
        let depth = FileManager.default.currentDirectoryPath.split(separator: "/").count
        let names = [input, directory.path + "/./in.safetensors", directory.file("sub") + "/../in.safetensors",
                     directory.file("link"), directory.file("relative-link"), directory.file("hard"),
                     String(repeating: "../", count: depth) + input.dropFirst(), directory.path + "//in.safetensors"]
        for name in names {
            #expect(throws: OutputConflict.sameFile(output: name, input: input)) { try OutputTarget.check(name, against: [input]) }
            #expect(throws: OutputConflict.sameFile(output: input, input: name)) { try OutputTarget.check(input, against: [name]) }
        }
        // Another file, a file still to be created and a dangling symlink are fine.
        try Data("other".utf8).write(to: URL(fileURLWithPath: directory.file("other")))
        try FileManager.default.createSymbolicLink(atPath: directory.file("dangling"), withDestinationPath: directory.file("nothing"))
        for name in [directory.file("other"), directory.file("new"), directory.file("dangling")] {
            try OutputTarget.check(name, against: [input])
        }
    }

    @Test func specialFilesAreRefused() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        #expect(mkfifo(directory.file("fifo"), 0o644) == 0)
        try FileManager.default.createSymbolicLink(atPath: directory.file("to-null"), withDestinationPath: "/dev/null")
        let cases = [("/dev/null", "a character device"), (directory.file("to-null"), "a character device"),
                     (directory.file("fifo"), "a FIFO"), (directory.path, "a directory"), ("", "")]
        for (path, kind) in cases {
            let expected: OutputConflict = path.isEmpty ? .emptyPath : .notRegularFile(path: path, kind: kind)
            #expect(throws: expected) { try OutputTarget.check(path, against: []) }
        }
    }
}

/// A file that changes while it is read, and data sections the tensors do not cover.
@Suite("Files that change or do not add up")
struct ChangedFileTests {
    /// Shrunk after its header was read: the read throws, naming the file (a mapping would SIGBUS).
    @Test func fileTruncatedAfterOpeningThrowsInsteadOfCrashing() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.file("w.safetensors")
        var writer = SafeTensorsWriter()
        try writer.add("w", floats: [Float](repeating: 1, count: 1 << 16), shape: [256, 256])
        try writer.add("v", floats: [1, 2, 3], shape: [3])
        try writer.write(to: path)
        let file = try SafeTensorsFile(path: path)
        #expect(truncate(path, 100) == 0)        // inside the header: no tensor is whole any more
        for read in [{ _ = try file.readFloats("w") }, { _ = try file.readFloats("w", rows: 200..<256, columns: 0..<8) },
                     { _ = try file.readFloats("v") }, { _ = try file.withRawBytes(of: "w") { $0.count } }] {
            let error = thrownError(read)
            #expect(caseName(error) == "changedWhileReading" && "\(error!)".contains(path), "\(String(describing: error))")
        }
    }

    /// Bytes after the last tensor, or between two, are refused (as the safetensors library does).
    @Test func dataBytesOutsideEveryTensorAreRefused() throws {
        var writer = SafeTensorsWriter()
        try writer.add("a", floats: [1, 2], shape: [2])
        try writer.add("b", floats: [3, 4], shape: [2])
        let valid = writer.serialized()
        _ = try SafeTensorsHeader.parse(bytes: valid, fileName: "ok")
        let trailing = valid + [0, 0, 0, 0]
        #expect(caseName(thrownError { _ = try SafeTensorsHeader.parse(bytes: trailing, fileName: "t") }) == "uncoveredBytes")
        // A hole: "b" moved 4 bytes on, the data section grown by 4.
        let n = Int(valid[0]) | Int(valid[1]) << 8
        var json = String(decoding: valid[8 ..< 8 + n], as: UTF8.self).replacingOccurrences(of: "[8,16]", with: "[12,20]")
        while json.utf8.count % 8 != 0 { json += " " }
        var holed = withUnsafeBytes(of: UInt64(json.utf8.count).littleEndian) { Array($0) } + Array(json.utf8)
        holed += Array(valid[(8 + n)...].prefix(8)) + [0, 0, 0, 0] + Array(valid[(8 + n + 8)...])
        let error = thrownError { _ = try SafeTensorsHeader.parse(bytes: holed, fileName: "h") }
        #expect(caseName(error) == "uncoveredBytes" && "\(error!)".contains("between tensors 'a' and 'b'"), "\(String(describing: error))")
    }

    /// A key given twice in one object is refused by the strict check config.json goes through.
    @Test func duplicateKeyIsFoundAtAnyDepth() throws {
        for text in ["{\"a\": 1, \"a\": 2}", "{\"x\": {\"b\": 1, \"b\": 1}}"] {
            #expect(throws: StrictJSON.DuplicateKey.self) { try StrictJSON.validate(Data(text.utf8)) }
        }
        try StrictJSON.validate(Data("{\"a\": 1, \"x\": {\"a\": 2}}".utf8))
    }
}
