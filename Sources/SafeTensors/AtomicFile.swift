import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The one way mla-tp writes a file: all of it or nothing. The bytes go to a temporary file in
/// the destination's directory, which is fsynced and then renamed over `path`; on any failure
/// the temporary file is removed and an existing file at `path` is left untouched.
public enum AtomicFile {
    /// Writes what `body` passes to its sink, in order, to `path`.
    public static func write(to path: String, _ body: (_ sink: ([UInt8]) throws -> Void) throws -> Void) throws {
        let url = URL(fileURLWithPath: path)
        let directory = url.deletingLastPathComponent().path
        let temporary = directory + "/.\(url.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw SafeTensorsWriteError.ioFailure(path: path, operation: "creating temporary file \(temporary)", errno: errno)
        }
        var isOpen = true
        var renamed = false
        defer {
            if isOpen { close(descriptor) }
            if !renamed { unlink(temporary) }
        }
        try body { bytes in try writeAll(descriptor, bytes, path: temporary) }
        guard fsync(descriptor) == 0 else {
            throw SafeTensorsWriteError.ioFailure(path: temporary, operation: "fsync", errno: errno)
        }
        isOpen = false
        guard close(descriptor) == 0 else {
            throw SafeTensorsWriteError.ioFailure(path: temporary, operation: "close", errno: errno)
        }
        guard rename(temporary, path) == 0 else {
            throw SafeTensorsWriteError.ioFailure(path: path, operation: "renaming \(temporary) into place", errno: errno)
        }
        renamed = true
        // Make the rename itself durable; failure here does not undo a completed write.
        let directoryDescriptor = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directoryDescriptor >= 0 {
            _ = fsync(directoryDescriptor)
            close(directoryDescriptor)
        }
    }

    /// Writes `data` to `path` atomically.
    public static func write(_ data: Data, to path: String) throws {
        try write(to: path) { sink in try sink([UInt8](data)) }
    }

    /// Writes every byte, retrying short writes and `EINTR`.
    static func writeAll(_ descriptor: Int32, _ bytes: [UInt8], path: String) throws {
        try bytes.withUnsafeBytes { buffer in
            var written = 0
            while written < buffer.count {
                let result = Glibc.write(descriptor, buffer.baseAddress! + written, buffer.count - written)
                if result < 0 {
                    if errno == EINTR { continue }
                    throw SafeTensorsWriteError.ioFailure(path: path, operation: "write", errno: errno)
                }
                written += result
            }
        }
    }
}
