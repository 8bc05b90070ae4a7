import Foundation
import SafeTensors
import TensorCore
import TensorParallel

/// Weights from an HF checkpoint (`model.safetensors` or an index with shards), read block by
/// block: each rank converts only the rows (column-parallel) or the column block of each row
/// (row-parallel) that it holds. Files are read with `pread` straight into the rank's own
/// buffers, with random-access advice, so other ranks' shards are never read, and a file that
/// shrinks meanwhile is an input error naming it, not a SIGBUS.
///
/// F32, F16 and BF16 convert to f32; F8_E4M3 with a `…weight_scale_inv` companion is
/// dequantized block by block (DeepSeek-V3's released format), only for the rank's block. For a
/// model held in bf16 (`bf16Block`) a BF16 tensor's block is copied as stored, never widened; any
/// other dtype is read as f32 (FP8 dequantized) and rounded to bf16 a bounded block of rows at a
/// time. For a model held in fp8 (`fp8Block`) an F8_E4M3 block is taken as stored, with the scales
/// of the tiles it touches.
///
/// A config that declares fp8 quantization (`quantization_config.quant_method: "fp8"`) must have
/// DeepSeek-V3's projections stored as F8_E4M3 (those named in `modules_to_not_convert` excepted):
/// a projection in another dtype is refused, naming it, whatever the model is held in.
public final class CheckpointWeights: WeightSource {
    public let index: CheckpointIndex
    /// FP8 block size from `quantization_config.weight_block_size` (128 when absent).
    public let fp8BlockSize: Int
    /// The config declares fp8 quantization.
    public let declaresFP8: Bool
    let notConverted: [String]

    public init(path: String, config: MLAConfig) throws {
        index = try CheckpointIndex(path: path, access: .random)
        fp8BlockSize = config.fp8BlockSize
        declaresFP8 = config.quantMethod == "fp8"
        notConverted = config.modulesToNotConvert ?? []
    }

    /// Refuses a projection the config says is fp8 but the checkpoint holds in another dtype.
    func checkDeclaredQuantization(_ name: String, _ file: SafeTensorsFile, _ info: TensorInfo) throws {
        guard declaresFP8, info.dtype != .F8_E4M3, WeightNames.isFP8Module(name),
              !notConverted.contains(where: { name.hasPrefix($0) || name.contains("." + $0) }) else { return }
        throw CheckpointError.notQuantized(tensor: name, file: file.path, dtype: info.dtype.rawValue)
    }

    /// A weight's file and header entry, its shape checked against the config's and its dtype
    /// against the declared quantization.
    private func locateWeight(_ name: String, shape: Shape) throws -> (SafeTensorsFile, TensorInfo) {
        let (file, info) = try index.locate(name)
        guard info.shape == shape.dims else {
            throw CheckpointError.wrongShape(tensor: name, file: file.path, expected: shape.dims, found: info.shape)
        }
        try checkDeclaredQuantization(name, file, info)
        return (file, info)
    }

    /// Bytes read from the checkpoint's files so far (only the blocks this rank asked for).
    public var bytesRead: Int { index.totalBytesRead }

    public func block(_ name: String, shape: Shape, rows: Range<Int>, cols: Range<Int>, initializer: Initializer) throws -> Matrix {
        let (file, info) = try locateWeight(name, shape: shape)
        return try Matrix(rows: rows.count, cols: cols.count) { try readFloats(name, file, info, rows: rows, cols: cols, into: $0) }
    }

    /// A block as f32: converted, or dequantized from FP8 with its block scales.
    private func readFloats(_ name: String, _ file: SafeTensorsFile, _ info: TensorInfo, rows: Range<Int>, cols: Range<Int>,
                            into out: UnsafeMutableBufferPointer<Float>) throws {
        if info.dtype == .F8_E4M3 {
            try index.readDequantizedFP8(name, rows: rows, columns: cols, blockSize: fp8BlockSize, into: out)
        } else {
            try file.readFloats(name, rows: rows, columns: cols, into: out)
        }
    }

    public func bf16Block(_ name: String, shape: Shape, rows: Range<Int>, cols: Range<Int>, initializer: Initializer) throws -> BF16Matrix {
        let (file, info) = try locateWeight(name, shape: shape)
        if info.dtype == .BF16 {
            return try BF16Matrix(rows: rows.count, cols: cols.count) { out in
                try out.withMemoryRebound(to: UInt16.self) { try file.readBF16Bits(name, rows: rows, columns: cols, into: $0) }
            }
        }
        return try BF16Matrix(rows: rows.count, cols: cols.count) { local, scratch in
            try readFloats(name, file, info, rows: rows.lowerBound + local.lowerBound ..< rows.lowerBound + local.upperBound, cols: cols, into: scratch)
        }
    }

    public func shape(of name: String) -> [Int]? { (try? index.locate(name))?.1.shape }

    /// An F8_E4M3 tensor's block as stored: the block's e4m3 bytes and the scales of the tiles it
    /// touches (each checked finite and positive); nil for any other dtype.
    public func fp8Block(_ name: String, shape: Shape, rows: Range<Int>, cols: Range<Int>, initializer: Initializer) throws -> FP8BlockMatrix? {
        let (_, info) = try locateWeight(name, shape: shape)
        guard info.dtype == .F8_E4M3 else { return nil }
        let stored = try index.readStoredFP8(name, rows: rows, columns: cols, blockSize: fp8BlockSize)
        return FP8BlockMatrix(rows: rows.count, cols: cols.count, blockSize: fp8BlockSize, values: stored.bytes, scales: stored.scales,
                              scaleCols: stored.scaleColumns.count, rowOffset: rows.lowerBound % fp8BlockSize,
                              columnOffset: cols.lowerBound % fp8BlockSize)
    }

    /// Under a config that declares fp8: whether `name` is stored in fp8. Otherwise nil (an fp8
    /// model quantizes every projection of a bf16 or f32 checkpoint itself).
    public func storedInFP8(_ name: String) -> Bool? {
        guard declaresFP8, let (_, info) = try? index.locate(name) else { return nil }
        return info.dtype == .F8_E4M3
    }

    public func vector(_ name: String, count: Int, range: Range<Int>, initializer: Initializer) throws -> [Float] {
        let (file, info) = try index.locate(name)
        guard info.shape == [count] else {
            throw CheckpointError.wrongShape(tensor: name, file: file.path, expected: [count], found: info.shape)
        }
        return try file.readFloats(name, rows: range)
    }
}

/// A checkpoint or input file whose contents do not fit the model.
public enum CheckpointError: Error, Equatable, CustomStringConvertible {
    case wrongShape(tensor: String, file: String, expected: [Int], found: [Int])
    case missingInput(file: String, tensor: String)
    case layerOutOfRange(layer: Int, layers: Int)
    case nonFiniteInput(file: String, token: Int, column: Int, value: Float)
    case notQuantized(tensor: String, file: String, dtype: String)

    public var description: String {
        switch self {
        case let .wrongShape(tensor, file, expected, found):
            return "\(file): tensor \(tensor) has shape \(Shape(found)) but the config needs \(Shape(expected)) — "
                + "the checkpoint does not match its config.json (check hidden_size, heads and the head dims)"
        case let .missingInput(file, tensor):
            return "\(file) has no tensor \"\(tensor)\" — an input file needs hidden_states [T, hidden] (positions [T] and cu_seqlens [B+1] are optional)"
        case let .layerOutOfRange(layer, layers):
            return "--layer \(layer) is out of range: the model has \(layers) layers — pass --layer between 0 and \(layers - 1)"
        case let .notQuantized(tensor, file, dtype):
            return "\(file): tensor \(tensor) is \(dtype), but config.json's quantization_config declares fp8 and DeepSeek-V3 stores this "
                + "projection as F8_E4M3 with a weight_scale_inv — the config does not match the checkpoint: remove quantization_config, "
                + "or list the module in modules_to_not_convert"
        case let .nonFiniteInput(file, token, column, value):
            return "\(file): hidden_states has \(value) at token \(token), column \(column) — the input must be finite; fix the file that produced it"
        }
    }
}

/// The model input in a safetensors file: `hidden_states [T, hidden]` (F32/BF16/F16),
/// optional `positions [T]` and `cu_seqlens [B+1]` (I32/I64). Opening reads the header only, so
/// that the sizes it declares (`tokens`, `sequences`) go through `SizeBudget` before `load()`
/// allocates anything proportional to them.
public struct InputFile {
    public let path: String
    let file: SafeTensorsFile
    /// T: rows of hidden_states.
    public let tokens: Int
    /// B: entries of cu_seqlens minus one (1 without cu_seqlens).
    public let sequences: Int

    public init(path: String, hiddenSize: Int) throws {
        self.path = path
        file = try SafeTensorsFile(path: path)
        guard let info = file.tensors["hidden_states"] else { throw CheckpointError.missingInput(file: path, tensor: "hidden_states") }
        guard info.shape.count == 2, info.shape[1] == hiddenSize else {
            throw CheckpointError.wrongShape(tensor: "hidden_states", file: path, expected: [info.shape.first ?? 0, hiddenSize], found: info.shape)
        }
        tokens = info.shape[0]
        sequences = max((file.tensors["cu_seqlens"]?.elementCount ?? 2) - 1, 0)
    }

    /// Reads the hidden states `[T, hidden]` and the batch layout.
    public func load() throws -> (hiddenStates: Matrix, batch: Batch) {
        let tokens = self.tokens, path = self.path
        let hiddenStates = try Matrix(rows: tokens, cols: file.tensors["hidden_states"]!.shape[1], values: try file.readFloats("hidden_states"))
        if let bad = hiddenStates.firstNonFinite() {
            throw CheckpointError.nonFiniteInput(file: path, token: bad.row, column: bad.col, value: bad.value)
        }
        let cu = file.tensors["cu_seqlens"] != nil ? try file.readInts("cu_seqlens") : [0, tokens]
        let positions: [Int]
        if let p = file.tensors["positions"] {
            guard p.shape == [tokens] else {
                throw CheckpointError.wrongShape(tensor: "positions", file: path, expected: [tokens], found: p.shape)
            }
            positions = try file.readInts("positions")
        } else {
            positions = []
        }
        let batch = try positions.isEmpty ? Batch(cuSeqlens: cu, positions: Batch.defaultPositions(cuSeqlens: cu, tokens: tokens))
                                          : Batch(cuSeqlens: cu, positions: positions)
        return (hiddenStates, batch)
    }
}

extension Batch {
    /// Positions 0 ..< len within each sequence of `cuSeqlens` (when the boundaries are valid).
    static func defaultPositions(cuSeqlens cu: [Int], tokens: Int) -> [Int] {
        guard cu.count >= 2, cu.first == 0, cu.last == tokens, zip(cu, cu.dropFirst()).allSatisfy({ $0 <= $1 }) else {
            return [Int](repeating: 0, count: tokens)   // Batch(cuSeqlens:) then reports the bad boundaries
        }
        return zip(cu, cu.dropFirst()).flatMap { 0..<($1 - $0) }
    }
}
