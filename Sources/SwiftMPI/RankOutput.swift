import ExitClass
#if canImport(Glibc)
import Glibc
#endif

/// Writes text to standard output or standard error with `write(2)` (Swift 6 rejects Glibc's
/// `stdout` globals). `printRoot` writes only on rank 0, so N ranks print one copy.
public struct RankOutput: Sendable {
    public let rank: Int

    public init(rank: Int) { self.rank = rank }

    /// Prints on rank 0 only. A report's lines stay lines; any other control character in it (from
    /// a path or a checkpoint's string) is shown escaped (`OutsideText`).
    public func printRoot(_ text: String, terminator: String = "\n") {
        if rank == 0 { RankOutput.write(OutsideText.escapedKeepingLines(text) + terminator, fd: 1) }
    }

    /// Prints on this rank (every rank that calls it).
    public func printAll(_ text: String, terminator: String = "\n") {
        RankOutput.write(text + terminator, fd: 1)
    }

    /// Writes a whole string to a file descriptor, retrying short writes.
    public static func write(_ text: String, fd: Int32) {
        var bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeMutableBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n <= 0 { if errno == EINTR { continue }; return }
            offset += n
        }
    }
}
