import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A safetensors file mapped read-only into memory.
///
/// Opening maps the whole file (`PROT_READ`, `MAP_PRIVATE`) and validates the
/// header; no tensor data is touched until a read. Reads convert only the
/// requested block, so a tensor-parallel rank that loads its shard faults in
/// only the pages of that shard (plus whatever read-ahead the kernel adds; see
/// ``AccessAdvice``).
///
/// The file must not be truncated while mapped: the kernel would deliver
/// `SIGBUS` on access to the missing pages. Reads are safe to issue from
/// several threads; ``bytesRead`` is updated under a lock.
public final class SafeTensorsFile: @unchecked Sendable {
    /// How the kernel should expect the mapping to be accessed (`madvise`).
    public enum AccessAdvice: Sendable {
        /// Default kernel read-around on faults: each fault may read a window as large as the
        /// device's read-ahead setting (8 MiB on some virtual disks), i.e. far beyond a shard.
        case normal
        /// `MADV_RANDOM`: fault in only the touched pages; best for loading shards and for
        /// measuring residency, at the cost of one small read per page on a cold cache.
        case random
        /// `MADV_SEQUENTIAL`: aggressive read-ahead; best for whole-file scans.
        case sequential
    }

    /// The path the file was opened from.
    public let path: String
    /// Size of the file in bytes.
    public let fileSize: Int
    /// Every tensor in the file, keyed by name.
    public let tensors: [String: TensorInfo]
    /// The header's `__metadata__` (empty when absent).
    public let metadata: [String: String]
    /// Absolute file offset of the data section.
    public let dataOffset: Int

    private let base: UnsafeRawPointer?
    private let lock = NSLock()
    private var bytesReadCounter = 0

    /// Opens and maps `path`, then validates its header.
    ///
    /// - Throws: ``SafeTensorsReadError/cannotOpen(file:operation:errno:)`` when the file cannot be
    ///   opened or mapped, or a ``SafeTensorsHeaderError`` when the header is invalid.
    public init(path: String, access: AccessAdvice = .normal) throws {
        self.path = path
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw SafeTensorsReadError.cannotOpen(file: path, operation: "open", errno: errno) }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else {
            throw SafeTensorsReadError.cannotOpen(file: path, operation: "fstat", errno: errno)
        }
        guard (status.st_mode & S_IFMT) == S_IFREG else {
            throw SafeTensorsReadError.cannotOpen(file: path, operation: "open (not a regular file)", errno: EINVAL)
        }
        let size = Int(status.st_size)
        var mapping: UnsafeRawPointer?
        if size > 0 {
            let address = mmap(nil, size, PROT_READ, MAP_PRIVATE, descriptor, 0)
            guard let address, address != MAP_FAILED else {
                throw SafeTensorsReadError.cannotOpen(file: path, operation: "mmap", errno: errno)
            }
            mapping = UnsafeRawPointer(address)
            // Advise before parsing, so the header read already follows the requested pattern.
            let advice: Int32 = switch access {
            case .normal: MADV_NORMAL
            case .random: MADV_RANDOM
            case .sequential: MADV_SEQUENTIAL
            }
            _ = madvise(address, size, advice)
        }
        let header: SafeTensorsHeader
        do {
            header = try SafeTensorsHeader.parse(
                bytes: UnsafeRawBufferPointer(start: mapping, count: size), fileSize: size, fileName: path)
        } catch {
            if let mapping { munmap(UnsafeMutableRawPointer(mutating: mapping), size) }
            throw error
        }
        self.base = mapping
        self.fileSize = size
        self.tensors = header.tensors
        self.metadata = header.metadata
        self.dataOffset = header.dataOffset
    }

    deinit {
        if let base { munmap(UnsafeMutableRawPointer(mutating: base), fileSize) }
    }

    /// Total bytes of tensor data read through this object so far. Each read adds
    /// exactly the bytes of the block it converts; header parsing is not counted.
    public var bytesRead: Int {
        lock.lock()
        defer { lock.unlock() }
        return bytesReadCounter
    }

    /// Adds `count` to ``bytesRead``.
    func recordRead(_ count: Int) {
        lock.lock()
        bytesReadCounter += count
        lock.unlock()
    }

    /// Tensor names in sorted order.
    public var tensorNames: [String] { tensors.keys.sorted() }

    /// Looks a tensor up, throwing an error that names the tensor and this file when absent.
    public func info(_ name: String) throws -> TensorInfo {
        guard let info = tensors[name] else { throw SafeTensorsReadError.tensorNotFound(file: path, tensor: name) }
        return info
    }

    /// Pointer to byte `offset` of `info`'s data. Only valid for offsets inside the tensor.
    func dataPointer(_ info: TensorInfo, offset: Int = 0) -> UnsafeRawPointer {
        // A tensor with bytes implies a non-empty file, hence a mapping.
        base.unsafelyUnwrapped + dataOffset + info.byteRange.lowerBound + offset
    }

    /// Calls `body` with the raw little-endian bytes of a whole tensor (no conversion),
    /// e.g. to upload BF16 weights as they are. Counts the tensor's bytes in ``bytesRead``.
    /// The buffer is valid only inside `body`.
    public func withRawBytes<Result>(of name: String, _ body: (UnsafeRawBufferPointer) throws -> Result) throws -> Result {
        let info = try info(name)
        recordRead(info.byteCount)
        guard info.byteCount > 0 else { return try body(UnsafeRawBufferPointer(start: nil, count: 0)) }
        return try body(UnsafeRawBufferPointer(start: dataPointer(info), count: info.byteCount))
    }

    /// The system page size in bytes.
    public static var pageSize: Int { Int(sysconf(Int32(_SC_PAGESIZE))) }

    /// Bytes of the pages spanned by a tensor's data that are resident in memory,
    /// measured with `mincore` on the page-aligned range. Whole pages are counted,
    /// so the result may exceed the tensor's size by up to two partial pages.
    ///
    /// Residency reflects the page cache, not only this process: pages another
    /// reader (or the writer that just created the file) left cached count as
    /// resident. Call ``evictFromPageCache(path:)`` before opening to measure
    /// cold reads.
    public func residentBytes(of name: String) throws -> Int {
        let info = try info(name)
        guard info.byteCount > 0, let base else { return 0 }
        let page = Self.pageSize
        let start = dataOffset + info.byteRange.lowerBound
        let alignedStart = start - start % page
        let length = dataOffset + info.byteRange.upperBound - alignedStart
        let pageCount = (length + page - 1) / page
        var vector = [UInt8](repeating: 0, count: pageCount)
        let result = vector.withUnsafeMutableBufferPointer {
            mincore(UnsafeMutableRawPointer(mutating: base + alignedStart), length, $0.baseAddress)
        }
        guard result == 0 else {
            throw SafeTensorsReadError.cannotOpen(file: path, operation: "mincore", errno: errno)
        }
        return vector.reduce(0) { $0 + Int($1 & 1) } * page
    }

    /// Asks the kernel to drop a file's clean pages from the page cache
    /// (`posix_fadvise(POSIX_FADV_DONTNEED)`), so the next reads come from disk.
    /// Pages still mapped by a live ``SafeTensorsFile`` or dirty pages are not dropped;
    /// on tmpfs nothing is dropped at all.
    public static func evictFromPageCache(path: String) throws {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw SafeTensorsReadError.cannotOpen(file: path, operation: "open", errno: errno) }
        defer { close(descriptor) }
        let result = posix_fadvise(descriptor, 0, 0, POSIX_FADV_DONTNEED)
        guard result == 0 else {
            throw SafeTensorsReadError.cannotOpen(file: path, operation: "posix_fadvise", errno: result)
        }
    }
}
