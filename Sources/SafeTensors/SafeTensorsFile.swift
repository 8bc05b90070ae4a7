import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A safetensors file opened for reading.
///
/// Opening reads and validates the header only. Tensor data is read with `pread` into the
/// caller's own buffers, block by block, so a tensor-parallel rank that loads its shard reads
/// only the bytes of that shard, and only its buffers hold them (anonymous memory, nothing shared
/// through a mapping). A file that shrinks while it is read (another program rewriting a
/// checkpoint on shared storage) ends the read with
/// ``SafeTensorsReadError/changedWhileReading(file:tensor:offset:expected:fileSize:)``, an error
/// naming the file, never a `SIGBUS` as a memory mapping would give. Reads are safe to issue
/// from several threads; ``bytesRead`` is updated under a lock.
public final class SafeTensorsFile: @unchecked Sendable {
    /// How the kernel should expect the file to be read (`posix_fadvise`).
    public enum AccessAdvice: Sendable {
        /// Default read-ahead: each read may pull in a window as large as the device's read-ahead
        /// setting (8 MiB on some virtual disks), i.e. far beyond a shard.
        case normal
        /// `POSIX_FADV_RANDOM`: no read-ahead, only the pages read; best for loading shards and for
        /// measuring residency, at the cost of one small read per page on a cold cache.
        case random
        /// `POSIX_FADV_SEQUENTIAL`: aggressive read-ahead; best for whole-file scans.
        case sequential
    }

    /// The path the file was opened from.
    public let path: String
    /// Size of the file in bytes when it was opened.
    public let fileSize: Int
    /// Every tensor in the file, keyed by name.
    public let tensors: [String: TensorInfo]
    /// The header's `__metadata__` (empty when absent).
    public let metadata: [String: String]
    /// Absolute file offset of the data section.
    public let dataOffset: Int

    private let descriptor: Int32
    private let lock = NSLock()
    private var bytesReadCounter = 0

    /// Opens `path` and reads and validates its header.
    ///
    /// - Throws: ``SafeTensorsReadError/cannotOpen(file:operation:errno:)`` when the file cannot be
    ///   opened or read, or a ``SafeTensorsHeaderError`` when the header is invalid.
    public init(path: String, access: AccessAdvice = .normal) throws {
        self.path = path
        let descriptor: Int32, size: Int
        do throws(InputFileError) {
            (descriptor, size) = try RegularFile.open(path, what: "safetensors file")     // never waits on a FIFO
        } catch let error {
            guard case let .cannotOpen(code) = error.problem else { throw error }
            throw SafeTensorsReadError.cannotOpen(file: path, operation: "open", errno: code)
        }
        var keep = false
        defer { if !keep { close(descriptor) } }
        let advice: Int32 = switch access {
        case .normal: POSIX_FADV_NORMAL
        case .random: POSIX_FADV_RANDOM
        case .sequential: POSIX_FADV_SEQUENTIAL
        }
        _ = posix_fadvise(descriptor, 0, 0, advice)    // advice only
        // The length prefix, then as much of the header as it announces (bounded by the file and
        // the header limit): the parser checks both against the file size.
        var prefix = [UInt8](repeating: 0, count: min(size, 8))
        try Self.readFully(descriptor, path: path, at: 0, count: prefix.count, into: &prefix)
        var length = 0
        if prefix.count == 8 {
            let announced = prefix.reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            length = Int(min(announced, UInt64(SafeTensorsHeader.maxHeaderLength)))
        }
        var bytes = [UInt8](repeating: 0, count: min(size, 8 + length))
        try Self.readFully(descriptor, path: path, at: 0, count: bytes.count, into: &bytes)
        let header = try SafeTensorsHeader.parse(bytes: bytes, fileSize: size, fileName: path)
        keep = true
        self.descriptor = descriptor
        self.fileSize = size
        self.tensors = header.tensors
        self.metadata = header.metadata
        self.dataOffset = header.dataOffset
    }

    deinit { close(descriptor) }

    /// `count` bytes at file offset `offset` into `buffer`; a file that ends early throws
    /// `changedWhileReading` for `tensor`.
    func read(_ tensor: String, at offset: Int, count: Int, into buffer: UnsafeMutableRawPointer) throws {
        var done = 0
        while done < count {
            let n = pread(descriptor, buffer + done, min(count - done, 1 << 30), off_t(offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                throw SafeTensorsReadError.cannotOpen(file: path, operation: "read of tensor '\(tensor)'", errno: errno)
            }
            guard n > 0 else {
                var status = stat()
                let now = fstat(descriptor, &status) == 0 ? Int(status.st_size) : offset + done
                throw SafeTensorsReadError.changedWhileReading(file: path, tensor: tensor, offset: offset, expected: count, fileSize: now)
            }
            done += n
        }
    }

    /// The header bytes of a file being opened.
    private static func readFully(_ descriptor: Int32, path: String, at offset: Int, count: Int, into bytes: inout [UInt8]) throws {
        var done = 0
        try bytes.withUnsafeMutableBytes { buffer in
            while done < count {
                let n = pread(descriptor, buffer.baseAddress! + done, count - done, off_t(offset + done))
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else {
                    throw n < 0 ? SafeTensorsReadError.cannotOpen(file: path, operation: "read", errno: errno)
                        : SafeTensorsReadError.changedWhileReading(file: path, tensor: "(header)", offset: offset, expected: count, fileSize: offset + done)
                }
                done += n
            }
        }
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

    /// Absolute file offset of byte `offset` of `info`'s data.
    func fileOffset(_ info: TensorInfo, offset: Int = 0) -> Int { dataOffset + info.byteRange.lowerBound + offset }

    /// Calls `body` with the raw little-endian bytes of a whole tensor (no conversion),
    /// e.g. to upload BF16 weights as they are. Counts the tensor's bytes in ``bytesRead``.
    /// The buffer is valid only inside `body`.
    public func withRawBytes<Result>(of name: String, _ body: (UnsafeRawBufferPointer) throws -> Result) throws -> Result {
        let info = try info(name)
        guard info.byteCount > 0 else { return try body(UnsafeRawBufferPointer(start: nil, count: 0)) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: info.byteCount, alignment: 16)
        defer { buffer.deallocate() }
        try read(name, at: fileOffset(info), count: info.byteCount, into: buffer.baseAddress!)
        recordRead(info.byteCount)
        return try body(UnsafeRawBufferPointer(buffer))
    }

    /// The system page size in bytes.
    public static var pageSize: Int { Int(sysconf(Int32(_SC_PAGESIZE))) }

    /// Bytes of the pages spanned by a tensor's data that are resident in memory,
    /// measured with `mincore` on the page-aligned range. Whole pages are counted,
    /// so the result may exceed the tensor's size by up to two partial pages.
    ///
    /// Residency reflects the page cache, not only this process: pages another
    /// reader (or the writer that just created the file) left cached count as
    /// resident. Call ``evictFromPageCache(path:)`` before reading to measure
    /// cold reads.
    public func residentBytes(of name: String) throws -> Int {
        let info = try info(name)
        guard info.byteCount > 0 else { return 0 }
        let page = Self.pageSize
        let start = dataOffset + info.byteRange.lowerBound
        let alignedStart = start - start % page
        let length = dataOffset + info.byteRange.upperBound - alignedStart
        let pageCount = (length + page - 1) / page
        // A mapping only to ask mincore: nothing is read through it, so no page is touched.
        let address = mmap(nil, length, PROT_READ, MAP_SHARED, descriptor, off_t(alignedStart))
        guard let address, address != MAP_FAILED else {
            throw SafeTensorsReadError.cannotOpen(file: path, operation: "mmap (residency)", errno: errno)
        }
        defer { munmap(address, length) }
        var vector = [UInt8](repeating: 0, count: pageCount)
        let result = vector.withUnsafeMutableBufferPointer { mincore(address, length, $0.baseAddress) }
        guard result == 0 else {
            throw SafeTensorsReadError.cannotOpen(file: path, operation: "mincore", errno: errno)
        }
        return vector.reduce(0) { $0 + Int($1 & 1) } * page
    }

    /// Asks the kernel to drop a file's clean pages from the page cache
    /// (`posix_fadvise(POSIX_FADV_DONTNEED)`), so the next reads come from disk.
    /// Dirty pages are not dropped;
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
