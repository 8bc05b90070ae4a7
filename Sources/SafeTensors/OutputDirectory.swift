import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A directory-shaped output (`init --out`, `sweep --out`): checked before any work, and held by
/// one writer at a time.
///
/// ``claim(_:)`` takes an exclusive `flock` on the directory itself (no lock file is left behind)
/// for as long as the process runs; a second mla-tp that claims it is refused at once with one line
/// naming the first (its pid and command line, found through `/proc/locks`). The kernel drops the
/// lock whatever ends the holder, SIGKILL included.
public enum OutputDirectory {
    /// Checks `directory` before anything is written: a non-empty path that is a directory, or
    /// that does not exist yet and whose parent is one. Returns whether it exists.
    public static func check(_ directory: String) throws(OutputDirectoryError) -> Bool {
        guard !directory.isEmpty else { throw .emptyPath }
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { throw .notADirectory(path: directory, target: directory) }
            return true
        }
        let parent = AtomicFile.directory(of: directory)
        guard FileManager.default.fileExists(atPath: parent, isDirectory: &isDirectory) else {
            throw .missingParent(parent: parent, target: directory)
        }
        guard isDirectory.boolValue else { throw .notADirectory(path: parent, target: directory) }
        return false
    }

    /// Checks `directory`, creates it if it is missing, and claims it for this process.
    public static func prepare(_ directory: String) throws {
        if try !check(directory), mkdir(directory, 0o755) != 0, errno != EEXIST {
            throw SafeTensorsWriteError.ioFailure(path: directory, operation: "creating the directory", errno: errno)
        }
        try claim(directory)
    }

    /// Makes the directory `path` inside a prepared output (an existing directory is fine).
    public static func subdirectory(_ path: String) throws {
        var status = stat()
        if stat(path, &status) == 0, status.st_mode & S_IFMT == S_IFDIR { return }
        guard mkdir(path, 0o755) == 0 else { throw SafeTensorsWriteError.ioFailure(path: path, operation: "creating the directory", errno: errno) }
    }

    /// Claims the existing `directory` for this process until it exits (idempotent).
    public static func claim(_ directory: String) throws {
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw SafeTensorsWriteError.ioFailure(path: directory, operation: "opening the directory", errno: errno) }
        var status = stat()
        if fstat(fd, &status) == 0, held.withLock({ $0.contains(status.st_ino) }) { close(fd); return }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let code = errno
            close(fd)
            guard code == EWOULDBLOCK else { throw SafeTensorsWriteError.ioFailure(path: directory, operation: "locking the directory", errno: code) }
            throw OutputDirectoryError.inUse(path: directory, holder: holder(of: status))
        }
        held.withLock { _ = $0.insert(status.st_ino) }      // the descriptor stays open: the claim lasts as long as the process
    }

    /// The inodes of the directories this process holds.
    static let held = Locked<Set<ino_t>>([])

    /// Who holds the lock on the directory of `status`: `pid N (command line)` from `/proc/locks`.
    static func holder(of status: stat) -> String {
        func hex(_ v: UInt64) -> String { let h = String(v, radix: 16); return h.count < 2 ? "0" + h : h }
        let dev = UInt64(status.st_dev)
        let device = "\(hex((dev >> 8) & 0xfff | (dev >> 32) & ~0xfff)):\(hex(dev & 0xff | (dev >> 12) & ~0xff)):\(status.st_ino)"
        guard let locks = try? String(contentsOfFile: "/proc/locks", encoding: .utf8) else { return "another process" }
        for line in locks.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count >= 6, fields[1] == "FLOCK", fields[5] == device, let pid = Int(fields[4]) else { continue }
            let raw = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline"))) ?? Data()
            let command = raw.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }.joined(separator: " ")
            return "pid \(pid)" + (command.isEmpty ? "" : " (\(command))")
        }
        return "another process"
    }
}

/// A value behind a lock.
final class Locked<Value>: @unchecked Sendable {
    private var value: Value
    private let lock = NSLock()
    init(_ value: Value) { self.value = value }
    func withLock<R>(_ body: (inout Value) -> R) -> R { lock.withLock { body(&value) } }
}

/// A directory-shaped output that cannot be written: a usage error, before anything is written.
public enum OutputDirectoryError: Error, Equatable, CustomStringConvertible {
    case emptyPath
    case notADirectory(path: String, target: String)
    case missingParent(parent: String, target: String)
    /// Another process is writing it.
    case inUse(path: String, holder: String)
    /// Another writer made the directory after this one found it missing.
    case createdMeanwhile(path: String)

    public var description: String {
        switch self {
        case .emptyPath:
            return "--out is empty — pass the directory to write, e.g. --out /tmp/tiny"
        case let .notADirectory(path, target) where path == target:
            return "--out \(target) is an existing file, not a directory — pass a directory (new or existing)"
        case let .notADirectory(path, target):
            return "--out \(target): \(path) is a file, not a directory — pass a path whose parent is a directory"
        case let .missingParent(parent, target):
            return "--out \(target): its parent \(parent) does not exist — create it first (mkdir -p \(parent)) or pick another path"
        case let .inUse(path, holder):
            return "--out \(path) is being written by another mla-tp, \(holder) — wait for it to finish, or pick another --out"
        case let .createdMeanwhile(path):
            return "--out \(path) was created by another writer while this one was writing; nothing was written — rerun once it has finished, or pick another --out"
        }
    }
}
