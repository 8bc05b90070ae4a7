import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The checks an output path passes before any work: it must not be the same file as any
/// input (the same device and inode, or the same path once symlinks are resolved: a hard link,
/// a symlink, `./` and `..` detours, a relative or absolute spelling all name one file), and if
/// it exists it must be a regular file (writing over a directory, FIFO, socket or device such as
/// /dev/null would replace it with a regular file).
public enum OutputTarget {
    /// Throws ``OutputConflict`` when `output` may not be written while `inputs` are read.
    public static func check(_ output: String, against inputs: [String]) throws(OutputConflict) {
        guard !output.isEmpty else { throw .emptyPath }
        // Following symlinks: a link to a device is refused like the device (a dangling link is
        // fine: writing replaces the link, never its missing target).
        var status = stat()
        if stat(output, &status) == 0, let kind = nonRegularKind(status.st_mode) {
            throw .notRegularFile(path: output, kind: kind)
        }
        let outputKey = identity(output), outputPath = resolved(output)
        for input in inputs where !input.isEmpty {
            if let key = identity(input), key == outputKey { throw .sameFile(output: output, input: input) }
            if let a = outputPath, let b = resolved(input), a == b { throw .sameFile(output: output, input: input) }
        }
    }

    /// What a non-regular file is, for the message; nil for a regular file.
    static func nonRegularKind(_ mode: mode_t) -> String? {
        switch mode & S_IFMT {
        case S_IFREG: return nil
        case S_IFDIR: return "a directory"
        case S_IFIFO: return "a FIFO"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFSOCK: return "a socket"
        default: return "not a regular file"
        }
    }

    /// (device, inode) of the file `path` names (following symlinks), or nil when it does not exist.
    static func identity(_ path: String) -> [UInt64]? {
        var s = stat()
        guard stat(path, &s) == 0 else { return nil }
        return [UInt64(s.st_dev), UInt64(s.st_ino)]
    }

    /// `path` with every symlink, `.` and `..` resolved; for a file that does not exist yet, its
    /// directory resolved and its name appended.
    static func resolved(_ path: String) -> String? {
        if let full = realpath(path, nil) {
            defer { free(full) }
            return String(cString: full)
        }
        let url = URL(fileURLWithPath: path)
        guard let dir = realpath(url.deletingLastPathComponent().path, nil) else { return nil }
        defer { free(dir) }
        return String(cString: dir) + "/" + url.lastPathComponent
    }
}

/// An output that would destroy an input or a special file: a usage error (exit 2).
public enum OutputConflict: Error, Equatable, CustomStringConvertible {
    case emptyPath
    case notRegularFile(path: String, kind: String)
    case sameFile(output: String, input: String)

    public var description: String {
        switch self {
        case .emptyPath:
            return "the output path is empty — pass a file name"
        case let .notRegularFile(path, kind):
            return "output \(path) exists and is \(kind), not a regular file; writing it would replace it — "
                + "pass the path of a regular file (or of one to create)"
        case let .sameFile(output, input):
            return "output \(output) is the same file as the input \(input); writing it would destroy that input — "
                + "write the output somewhere else"
        }
    }
}
