import ExitClass
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The one way a file named from outside is opened for reading: the checkpoint's safetensors
/// files and shards, `--input`, config.json, the checkpoint index and every JSON file mla-tp reads
/// back (`bench --from-json`, `--rates`, `--bench-json`, a job file, a sweep's files).
///
/// - The open never waits: `O_NONBLOCK` makes `open` of a FIFO return at once (without it, it
///   waits for a writer forever), and `fstat` on the descriptor then refuses anything but a
///   regular file — FIFO, socket, device (`/dev/zero`), directory — before a byte is read.
/// - A file read whole (``read(_:limit:what:)``) is refused above a limit its caller states, before
///   anything is allocated, and never more than the limit is read even if it grows meanwhile.
public enum RegularFile {
    /// Opens `path` read-only (blocking mode restored once it is known to be a regular file) and
    /// returns the descriptor and the file's size. The caller closes the descriptor.
    public static func open(_ path: String, what: String) throws(InputFileError) -> (descriptor: Int32, size: Int) {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw InputFileError(path: path, what: what, problem: .cannotOpen(errno: errno)) }
        var status = stat()
        guard fstat(fd, &status) == 0 else {
            let code = errno
            close(fd)
            throw InputFileError(path: path, what: what, problem: .cannotOpen(errno: code))
        }
        guard status.st_mode & S_IFMT == S_IFREG else {
            close(fd)
            throw InputFileError(path: path, what: what, problem: .notRegular(kind: kind(status.st_mode)))
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        return (fd, Int(status.st_size))
    }

    /// The whole of `path`, a regular file of at most `limit` bytes.
    public static func read(_ path: String, limit: Int, what: String) throws(InputFileError) -> Data {
        let (fd, size) = try open(path, what: what)
        defer { close(fd) }
        guard size <= limit else { throw InputFileError(path: path, what: what, problem: .tooLarge(size: size, limit: limit)) }
        // Until end of file, at most limit + 1 bytes: a file that grew past the limit since fstat
        // is refused the same way.
        var data = Data(capacity: min(size, limit) + 1)
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while data.count <= limit {
            let want = min(chunk.count, limit + 1 - data.count)
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress!, want) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw InputFileError(path: path, what: what, problem: .cannotOpen(errno: errno)) }
            if n == 0 { break }
            data.append(contentsOf: chunk[..<n])
        }
        guard data.count <= limit else { throw InputFileError(path: path, what: what, problem: .tooLarge(size: data.count, limit: limit)) }
        return data
    }

    /// What a file of mode `mode` is, in words.
    static func kind(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFIFO: return "a FIFO (named pipe)"
        case S_IFDIR: return "a directory"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFSOCK: return "a socket"
        default: return "not a regular file"
        }
    }
}

/// A file named from outside that cannot be read as one: its path, what it was to be, and why.
public struct InputFileError: ExitClassified, Equatable, Sendable {
    public enum Problem: Equatable, Sendable {
        /// `open`, `fstat` or `read` failed with this errno.
        case cannotOpen(errno: Int32)
        /// A FIFO, socket, device or directory (`kind` says which).
        case notRegular(kind: String)
        /// Larger than the limit of what is read whole.
        case tooLarge(size: Int, limit: Int)
    }

    public var path: String
    public var what: String
    public var problem: Problem

    public init(path: String, what: String, problem: Problem) {
        (self.path, self.what, self.problem) = (path, what, problem)
    }

    /// Why, without the path, for an error that wraps it.
    public var reason: String {
        switch problem {
        case let .cannotOpen(code): return "it cannot be read: \(describeErrno(code))"
        case let .notRegular(kind): return "it is \(kind), not a regular file"
        case let .tooLarge(size, limit):
            return "it has \(size) bytes, more than the \(limit) (\(limit >> 20) MiB) mla-tp reads of a \(what)"
        }
    }

    public var description: String {
        switch problem {
        case .cannotOpen: return "\(path): \(reason) — check that the path exists and is readable"
        case .notRegular: return "\(path): \(reason) — pass the \(what) as a regular file (mla-tp never reads an input from a pipe, socket or device)"
        case .tooLarge: return "\(path): \(reason) — pass the right file (a \(what) is far smaller)"
        }
    }

    public var failureClass: FailureClass { .input }
}
