import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The one way mla-tp writes a file: all of it or nothing.
///
/// The bytes go to an unnamed file (`O_TMPFILE`) in the destination's directory, which is
/// fsynced and only then linked in under its name (`linkat`; over an existing file, through a
/// short hidden name and `rename`). Until that moment the file has no name, so whatever ends the
/// process (a failure, SIGKILL, a lost node) leaves nothing behind and an existing file at the
/// destination untouched; a long destination name needs no longer temporary name. No file is
/// linked in once SIGINT or SIGTERM (or, under mpirun, its SIGCONT warning) has arrived
/// (`TerminationNotice`). Where the filesystem has no `O_TMPFILE`, a short hidden name is used
/// instead and removed on every failure that runs code.
///
/// Several files can be committed together (`commit(_:creatingDirectory:)`): each is linked in
/// only after all were written, with SIGINT and SIGTERM held back across the group.
public final class AtomicFile {
    /// Where the file goes.
    public let path: String
    private let descriptor: Int32
    /// The hidden name of a file staged without `O_TMPFILE` (nil: the file is unnamed).
    private var stagedName: String?
    private var committed = false

    /// Test-only: called right before a commit links its files in (the failure tests hold the
    /// output back here to send mpirun a signal at that moment).
    nonisolated(unsafe) public static var beforeCommit: (() -> Void)?

    /// Opens an unnamed file for `path`, in `stagingDirectory` (default: `path`'s directory,
    /// which must then exist; it must be on the same filesystem as `path`).
    public init(path: String, stagingDirectory: String? = nil) throws {
        guard !path.isEmpty else { throw OutputConflict.emptyPath }
        self.path = path
        try Self.refuseNonRegular(path)
        let directory = stagingDirectory ?? Self.directory(of: path)
        var fd = open(directory, Self.oTmpfile | O_WRONLY | O_CLOEXEC, 0o644)
        if fd < 0, [EOPNOTSUPP, EISDIR, EINVAL].contains(errno) {
            // No O_TMPFILE here: a short hidden name instead (never derived from a long destination name).
            let name = directory + "/" + Self.hiddenName()
            fd = open(name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
            if fd >= 0 { stagedName = name }
        }
        guard fd >= 0 else { throw SafeTensorsWriteError.ioFailure(path: path, operation: "creating a file in \(directory)", errno: errno) }
        descriptor = fd
    }

    deinit {
        close(descriptor)
        if !committed, let stagedName { unlink(stagedName) }
    }

    /// Appends every byte of `bytes`, retrying short writes and `EINTR`.
    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        var written = 0
        while written < bytes.count {
            let result = Glibc.write(descriptor, bytes.baseAddress! + written, bytes.count - written)
            if result < 0 {
                if errno == EINTR { continue }
                throw SafeTensorsWriteError.ioFailure(path: path, operation: "write", errno: errno)
            }
            written += result
        }
    }

    /// Appends `bytes`.
    public func write(_ bytes: [UInt8]) throws { try bytes.withUnsafeBytes { try write($0) } }

    /// Links the finished file in under `path`.
    public func commit() throws { try Self.commit([self]) }

    /// Writes `data` to `path` atomically.
    public static func write(_ data: Data, to path: String) throws {
        let file = try AtomicFile(path: path)
        try data.withUnsafeBytes { try file.write($0) }
        try file.commit()
    }

    /// Links every file in under its path: first each is fsynced and given a name (its own when
    /// nothing is there yet, else a hidden one beside it), then the hidden names are renamed over
    /// the old files. `creatingDirectory` is made first (and removed again if the group fails),
    /// for files staged in the directory above it. Nothing is linked when a termination notice
    /// has arrived; a failure before the renames removes every name it made.
    public static func commit(_ files: [AtomicFile], creatingDirectory: String? = nil) throws {
        for f in files where fsync(f.descriptor) != 0 {
            throw SafeTensorsWriteError.ioFailure(path: f.path, operation: "fsync", errno: errno)
        }
        beforeCommit?()
        try TerminationNotice.withTerminationBlocked(path: files.first?.path ?? "") {
            var made: [String] = [], createdDirectory = false
            do {
                if let dir = creatingDirectory {
                    guard mkdir(dir, 0o755) == 0 else {
                        if errno == EEXIST { throw OutputDirectoryError.createdMeanwhile(path: dir) }
                        throw SafeTensorsWriteError.ioFailure(path: dir, operation: "creating the directory", errno: errno)
                    }
                    createdDirectory = true
                    try OutputDirectory.claim(dir)
                }
                var renames: [(from: String, to: String)] = []
                for f in files {
                    try refuseNonRegular(f.path)
                    if let staged = f.stagedName {
                        renames.append((staged, f.path))
                    } else if linkIn(f.descriptor, as: f.path) == 0 {
                        made.append(f.path)
                    } else if errno == EEXIST {
                        let hidden = directory(of: f.path) + "/" + hiddenName()
                        guard linkIn(f.descriptor, as: hidden) == 0 else {
                            throw SafeTensorsWriteError.ioFailure(path: f.path, operation: "linking the written file in", errno: errno)
                        }
                        made.append(hidden)
                        renames.append((hidden, f.path))
                    } else {
                        throw SafeTensorsWriteError.ioFailure(path: f.path, operation: "linking the written file in", errno: errno)
                    }
                }
                for (i, r) in renames.enumerated() where rename(r.from, r.to) != 0 {
                    let code = errno
                    for rest in renames[i...] { unlink(rest.from) }
                    throw SafeTensorsWriteError.ioFailure(path: r.to, operation: "renaming the written file into place", errno: code)
                }
            } catch {
                for name in made { unlink(name) }
                for f in files { if let staged = f.stagedName { unlink(staged) } }
                if createdDirectory, let dir = creatingDirectory { rmdir(dir) }
                throw error
            }
            for f in files { f.committed = true }
        }
        // Make the names durable; failure here does not undo a completed write.
        for dir in Set(files.map { directory(of: $0.path) }) {
            let fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            if fd >= 0 { _ = fsync(fd); close(fd) }
        }
    }

    /// `O_TMPFILE` (`__O_TMPFILE | O_DIRECTORY`; the macro is not imported).
    static let oTmpfile: Int32 = 0o20000000 | O_DIRECTORY

    /// Gives the unnamed file `descriptor` the name `path` (fails with EEXIST if it is taken).
    static func linkIn(_ descriptor: Int32, as path: String) -> Int32 {
        linkat(AT_FDCWD, "/proc/self/fd/\(descriptor)", AT_FDCWD, path, AT_SYMLINK_FOLLOW)
    }

    /// A short hidden name: `.mla-tp-` and 16 hex digits.
    static func hiddenName() -> String { ".mla-tp-" + String(UInt64.random(in: 0...UInt64.max), radix: 16) }

    /// The directory `path` is in ("." for a bare name).
    public static func directory(of path: String) -> String {
        let dir = (path as NSString).deletingLastPathComponent
        return dir.isEmpty ? "." : dir
    }

    /// An existing destination that is not a regular file (a directory, FIFO, device) is never replaced.
    static func refuseNonRegular(_ path: String) throws {
        var s = stat()
        if stat(path, &s) == 0, let kind = OutputTarget.nonRegularKind(s.st_mode) { throw OutputConflict.notRegularFile(path: path, kind: kind) }
    }
}
