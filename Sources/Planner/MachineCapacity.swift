import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What this host has for a job: memory (the smaller of physical memory and the cgroup's limit,
/// where one is set) and the free space of a filesystem. Tests set them to fixed values.
public struct MachineCapacity: Sendable {
    public var memoryBytes: Int
    /// Free bytes of the filesystem holding a directory (nil: unknown, not checked).
    public var freeDiskBytes: @Sendable (String) -> Int?

    public init(memoryBytes: Int, freeDiskBytes: @escaping @Sendable (String) -> Int? = MachineCapacity.freeDisk) {
        self.memoryBytes = memoryBytes
        self.freeDiskBytes = freeDiskBytes
    }

    /// This host as measured now.
    public static var current: MachineCapacity {
        let physical = Int(clamping: ProcessInfo.processInfo.physicalMemory)
        return MachineCapacity(memoryBytes: min(physical, cgroupLimit() ?? Int.max))
    }

    /// The memory limit of this process's cgroup (v2 `memory.max`, else v1 `memory.limit_in_bytes`);
    /// nil when there is none ("max", or a v1 value near Int.max).
    static func cgroupLimit() -> Int? {
        for file in ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"] {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { continue }
            let value = text.trimmingCharacters(in: .whitespacesAndNewlines)
            if let bytes = Int(value), bytes > 0, bytes < Int.max / 2 { return bytes }
        }
        return nil
    }

    /// Free bytes (for an unprivileged user) of the filesystem holding `path`, or of the nearest
    /// existing directory above it.
    public static let freeDisk: @Sendable (String) -> Int? = { path in
        var url = URL(fileURLWithPath: path.isEmpty ? "." : path).standardizedFileURL
        for _ in 0..<64 {
            var s = statvfs()
            if statvfs(url.path, &s) == 0 {
                let (bytes, overflow) = Int(clamping: s.f_bavail).multipliedReportingOverflow(by: Int(clamping: s.f_frsize))
                return overflow ? Int.max : bytes
            }
            guard url.path != "/" else { return nil }
            url.deleteLastPathComponent()
        }
        return nil
    }
}
