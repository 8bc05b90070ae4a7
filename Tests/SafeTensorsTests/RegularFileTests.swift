import Foundation
import SafeTensors
import Testing

/// The one reader of files named from outside: a FIFO, a device or a directory is refused
/// without waiting, and a file read whole is bounded.
struct RegularFileTests {
    static func scratch() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mlatp-regular-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    @Test func aFIFOIsRefusedWithoutWaitingForAWriter() throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let fifo = dir.appendingPathComponent("fifo").path
        #expect(mkfifo(fifo, 0o644) == 0)
        #expect(throws: InputFileError(path: fifo, what: "config.json", problem: .notRegular(kind: "a FIFO (named pipe)"))) {
            try RegularFile.read(fifo, limit: 100, what: "config.json")
        }
        #expect(throws: InputFileError.self) { try SafeTensorsFile(path: fifo) }
        let index = dir.appendingPathComponent("model.safetensors.index.json").path
        #expect(mkfifo(index, 0o644) == 0)
        #expect(throws: CheckpointIndexError.invalidIndex(path: index, reason: "it is a FIFO (named pipe), not a regular file")) {
            try CheckpointIndex(path: dir.path)
        }
    }

    @Test(arguments: [("/dev/zero", "a character device"), ("/", "a directory")])
    func aDeviceOrDirectoryIsRefusedByKind(path: String, kind: String) {
        #expect(throws: InputFileError(path: path, what: "x", problem: .notRegular(kind: kind))) { try RegularFile.read(path, limit: 100, what: "x") }
    }

    @Test func aFileIsReadWholeUpToItsLimitAndRefusedPastIt() throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("f").path
        try Data(repeating: 7, count: 3 << 20).write(to: URL(fileURLWithPath: path))
        #expect(try RegularFile.read(path, limit: 3 << 20, what: "x").count == 3 << 20)
        #expect(throws: InputFileError(path: path, what: "x", problem: .tooLarge(size: 3 << 20, limit: (3 << 20) - 1))) {
            try RegularFile.read(path, limit: (3 << 20) - 1, what: "x")
        }
    }
}
