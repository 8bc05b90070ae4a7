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
/// other dtype is read as f32 (FP8 dequantized) and rounded to bf16 a bounded block of rows at a time.
public final class CheckpointWeights: WeightSource {
    public let index: CheckpointIndex
    /// FP8 block size from `quantization_config.weight_block_size` (128 when absent).
    public let fp8BlockSize: Int

    public init(path: String, config: MLAConfig) throws {
        index = try CheckpointIndex(path: path, access: .random)
        fp8BlockSize = config.weightBlockSize?.first ?? 128
    }

    /// Bytes read from the checkpoint's files so far (only the blocks this rank asked for).
    public var bytesRead: Int { index.totalBytesRead }

    public func block(_ name: String, shape: Shape, rows: Range<Int>, cols: Range<Int>, initializer: Initializer) throws -> Matrix {
        let (file, info) = try index.locate(name)
        guard info.shape == shape.dims else {
            throw CheckpointError.wrongShape(tensor: name, file: file.path, expected: shape.dims, found: info.shape)
        }
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
        let (file, info) = try index.locate(name)
        guard info.shape == shape.dims else {
            throw CheckpointError.wrongShape(tensor: name, file: file.path, expected: shape.dims, found: info.shape)
        }
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

    public var description: String {
        switch self {
        case let .wrongShape(tensor, file, expected, found):
            return "\(file): tensor \(tensor) has shape \(Shape(found)) but the config needs \(Shape(expected)) — "
                + "the checkpoint does not match its config.json (check hidden_size, heads and the head dims)"
        case let .missingInput(file, tensor):
            return "\(file) has no tensor \"\(tensor)\" — an input file needs hidden_states [T, hidden] (positions [T] and cu_seqlens [B+1] are optional)"
        case let .layerOutOfRange(layer, layers):
            return "--layer \(layer) is out of range: the model has \(layers) layers — pass --layer between 0 and \(layers - 1)"
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
