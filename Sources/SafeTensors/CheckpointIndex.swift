import Foundation

/// A Hugging Face style checkpoint: a single `.safetensors` file, or a
/// `model.safetensors.index.json` whose `weight_map` maps each tensor to a shard file.
///
/// Shard files are opened lazily, only when a tensor in them is first located, and
/// then cached. Thread-safe.
public final class CheckpointIndex: @unchecked Sendable {
    /// File name of the index in a sharded checkpoint directory.
    public static let indexFileName = "model.safetensors.index.json"
    /// File name of an unsharded checkpoint in a directory.
    public static let singleFileName = "model.safetensors"

    /// The index JSON path, or nil for a single-file checkpoint.
    public let indexPath: String?
    /// The index's `metadata` (scalar values as text), or the single file's `__metadata__` once opened.
    public let metadata: [String: String]
    /// The `madvise` hint used for every shard opened.
    public let access: SafeTensorsFile.AccessAdvice

    /// Tensor name → shard path; nil for a single-file checkpoint.
    private let weightMap: [String: String]?
    /// All shard paths, sorted (one entry for a single-file checkpoint).
    public let shardPaths: [String]
    private let lock = NSLock()
    private var cache: [String: SafeTensorsFile] = [:]

    /// Opens a checkpoint at `path`: a `.safetensors` file, an index JSON file, or a directory
    /// containing `model.safetensors.index.json` or `model.safetensors`. For a sharded checkpoint only
    /// the index is read here; a single-file checkpoint is opened (its header read) at once.
    /// - Throws: ``CheckpointIndexError``.
    public init(path: String, access: SafeTensorsFile.AccessAdvice = .normal) throws {
        self.access = access
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw CheckpointIndexError.checkpointNotFound(path: path)
        }
        var index: String?
        var single: String?
        if isDirectory.boolValue {
            let directory = URL(fileURLWithPath: path)
            let indexCandidate = directory.appendingPathComponent(Self.indexFileName).path
            let singleCandidate = directory.appendingPathComponent(Self.singleFileName).path
            if FileManager.default.fileExists(atPath: indexCandidate) {
                index = indexCandidate
            } else if FileManager.default.fileExists(atPath: singleCandidate) {
                single = singleCandidate
            } else {
                throw CheckpointIndexError.checkpointNotFound(path: path)
            }
        } else if path.hasSuffix(".json") {
            index = path
        } else {
            single = path
        }
        if let index {
            let parsed = try Self.parseIndex(at: index)
            indexPath = index
            metadata = parsed.metadata
            weightMap = parsed.weightMap
            shardPaths = Set(parsed.weightMap.values).sorted()
        } else {
            let file = try SafeTensorsFile(path: single!, access: access)
            indexPath = nil
            metadata = file.metadata
            weightMap = nil
            shardPaths = [single!]
            cache[single!] = file
        }
    }

    /// Every file a checkpoint at `path` consists of, as far as can be told without opening a
    /// shard: the index and the shards it lists, or the single file. Unreadable parts are left
    /// out (loading reports them); used to keep an output from overwriting any of them.
    public static func files(at path: String) -> [String] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { return [path] }
        var index = path
        if isDirectory.boolValue {
            index = URL(fileURLWithPath: path).appendingPathComponent(indexFileName).path
            if !FileManager.default.fileExists(atPath: index) { return [URL(fileURLWithPath: path).appendingPathComponent(singleFileName).path] }
        } else if !path.hasSuffix(".json") {
            return [path]
        }
        let shards = (try? parseIndex(at: index))?.weightMap.values.map { $0 } ?? []
        return [index] + Set(shards).sorted()
    }

    /// Every tensor name in the checkpoint, sorted.
    public var tensorNames: [String] {
        if let weightMap { return weightMap.keys.sorted() }
        return lock.withLock { cache[shardPaths[0]]?.tensorNames ?? [] }
    }

    /// Paths of the shard files opened so far, sorted.
    public var openedPaths: [String] {
        lock.withLock { cache.keys.sorted() }
    }

    /// Sum of ``SafeTensorsFile/bytesRead`` over every shard opened so far.
    public var totalBytesRead: Int {
        lock.withLock { cache.values.reduce(0) { $0 + $1.bytesRead } }
    }

    /// Returns the (cached) open shard at `path`, opening it on first use.
    public func file(at path: String) throws -> SafeTensorsFile {
        try lock.withLock {
            if let file = cache[path] { return file }
            let file = try SafeTensorsFile(path: path, access: access)
            cache[path] = file
            return file
        }
    }

    /// Finds a tensor, opening its shard if needed.
    /// - Throws: ``CheckpointIndexError/tensorNotFound(tensor:filesSearched:)`` naming the files searched,
    ///   or the error from opening the shard.
    public func locate(_ name: String) throws -> (file: SafeTensorsFile, info: TensorInfo) {
        let shard: String
        if let weightMap {
            guard let mapped = weightMap[name] else {
                throw CheckpointIndexError.tensorNotFound(tensor: name, filesSearched: [indexPath!] + shardPaths)
            }
            shard = mapped
        } else {
            shard = shardPaths[0]
        }
        let file = try file(at: shard)
        guard let info = file.tensors[name] else {
            let searched = indexPath.map { [$0, shard] } ?? [shard]
            throw CheckpointIndexError.tensorNotFound(tensor: name, filesSearched: searched)
        }
        return (file, info)
    }

    /// Reads a block of a float tensor wherever it lives; see ``SafeTensorsFile/readFloats(_:rows:columns:into:)``.
    public func readFloats(_ name: String, rows: Range<Int>? = nil, columns: Range<Int>? = nil,
                           into destination: UnsafeMutableBufferPointer<Float>) throws {
        try locate(name).file.readFloats(name, rows: rows, columns: columns, into: destination)
    }

    /// Reads a block of a float tensor into a new array.
    public func readFloats(_ name: String, rows: Range<Int>? = nil, columns: Range<Int>? = nil) throws -> [Float] {
        try locate(name).file.readFloats(name, rows: rows, columns: columns)
    }

    /// Reads an I32/I64 tensor wherever it lives; see ``SafeTensorsFile/readInts(_:)``.
    public func readInts(_ name: String) throws -> [Int] {
        try locate(name).file.readInts(name)
    }

    /// Dequantizes a block of an FP8 weight whose scale tensor may live in another shard.
    public func readDequantizedFP8(_ name: String, rows: Range<Int>? = nil, columns: Range<Int>? = nil,
                                   blockSize: Int = 128, into destination: UnsafeMutableBufferPointer<Float>) throws {
        let weight = try locate(name)
        let scaleName = FP8BlockDequantizer.scaleName(forWeight: name)
        let scale = try locate(scaleName)
        try FP8BlockDequantizer.dequantize(
            weightFile: weight.file, name: name, scaleFile: scale.file, scaleName: scaleName,
            rows: rows, columns: columns, blockSize: blockSize, into: destination)
    }

    /// A block of an FP8 weight as stored, with its scales, whose scale tensor may live in another shard.
    public func readStoredFP8(_ name: String, rows: Range<Int>, columns: Range<Int>, blockSize: Int = 128) throws -> FP8BlockDequantizer.StoredBlock {
        let weight = try locate(name)
        let scaleName = FP8BlockDequantizer.scaleName(forWeight: name)
        let scale = try locate(scaleName)
        return try FP8BlockDequantizer.stored(weightFile: weight.file, name: name, scaleFile: scale.file, scaleName: scaleName,
                                              rows: rows, columns: columns, blockSize: blockSize)
    }

    /// The largest index read (DeepSeek-V3's, 91,000 tensors, is under 10 MB).
    public static let maxIndexBytes = 64 << 20

    /// Reads and validates an index JSON file; shard names must be relative paths without `..`.
    private static func parseIndex(at path: String) throws -> (metadata: [String: String], weightMap: [String: String]) {
        func invalid(_ reason: String) -> CheckpointIndexError { .invalidIndex(path: path, reason: reason) }
        let data: Data
        do throws(InputFileError) { data = try RegularFile.read(path, limit: maxIndexBytes, what: "checkpoint index") } catch { throw invalid(error.reason) }
        let json: JSONValue
        do {
            json = try data.withUnsafeBytes { try JSONParser.parse($0) }
        } catch let error as JSONParseError {
            throw invalid("not valid JSON (\(error.reason))")
        }
        guard case let .object(members) = json else { throw invalid("the top level is \(json.kindName), not an object") }
        var metadata: [String: String] = [:]
        var weightMap: [String: String]?
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent()
        for (key, value) in members {
            switch (key, value) {
            case let ("metadata", .object(entries)):
                for (entryKey, entry) in entries {
                    switch entry {
                    case let .string(text), let .number(text): metadata[entryKey] = text
                    case let .bool(flag): metadata[entryKey] = flag ? "true" : "false"
                    default: continue
                    }
                }
            case let ("weight_map", .object(entries)):
                var map: [String: String] = [:]
                for (tensor, entry) in entries {
                    guard case let .string(file) = entry else {
                        throw invalid("weight_map['\(tensor)'] is \(entry.kindName), not a file name")
                    }
                    let components = file.split(separator: "/", omittingEmptySubsequences: false)
                    guard !file.isEmpty, !file.hasPrefix("/"), !components.contains("..") else {
                        throw invalid("weight_map['\(tensor)'] = '\(file)' is not a file name inside the checkpoint directory")
                    }
                    map[tensor] = directory.appendingPathComponent(file).path
                }
                weightMap = map
            case ("weight_map", _):
                throw invalid("\"weight_map\" is \(value.kindName), not an object")
            default:
                continue
            }
        }
        guard let weightMap else { throw invalid("the \"weight_map\" object is missing") }
        return (metadata, weightMap)
    }
}
