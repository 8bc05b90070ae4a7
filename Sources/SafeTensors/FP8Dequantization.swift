import Foundation

/// Block-wise FP8 dequantization as used by DeepSeek-V3 checkpoints.
///
/// A weight `W` of shape `[out, in]` stored as `F8_E4M3` has a companion
/// `…weight_scale_inv` tensor of shape `[ceil(out/B), ceil(in/B)]`, and the real
/// value is `W[r][c] × scale_inv[r / B][c / B]`. Only the requested block of the
/// weight and the scale entries covering it are read.
public enum FP8BlockDequantizer {
    /// The scale tensor name that goes with an FP8 weight:
    /// `"x.weight"` → `"x.weight_scale_inv"` (any other name gets `".weight_scale_inv"` appended).
    public static func scaleName(forWeight name: String) -> String {
        let stem = name.hasSuffix(".weight") ? String(name.dropLast(".weight".count)) : name
        return stem + ".weight_scale_inv"
    }

    /// `ceil(value / divisor)` for non-negative `value` and positive `divisor`, without overflow.
    static func ceilDivide(_ value: Int, _ divisor: Int) -> Int {
        value == 0 ? 0 : (value - 1) / divisor + 1
    }

    /// Dequantizes rows × columns of FP8 weight `name` in `weightFile` using scale tensor
    /// `scaleName` in `scaleFile` (which may be a different shard), writing row-major into `destination`.
    ///
    /// - Throws: ``SafeTensorsReadError`` when a tensor is missing, the weight is not 2-D `F8_E4M3`,
    ///   the scale shape does not match the block size, the block is out of bounds, or the
    ///   destination does not hold exactly rows × columns elements.
    public static func dequantize(
        weightFile: SafeTensorsFile, name: String, scaleFile: SafeTensorsFile, scaleName: String,
        rows: Range<Int>? = nil, columns: Range<Int>? = nil, blockSize: Int = 128,
        into destination: UnsafeMutableBufferPointer<Float>
    ) throws {
        let (block, scaleRows, scaleColumns, scales) = try scaledBlock(weightFile: weightFile, name: name, scaleFile: scaleFile,
                                                                        scaleName: scaleName, rows: rows, columns: columns, blockSize: blockSize)
        guard destination.count == block.elementCount else {
            throw SafeTensorsReadError.destinationSizeMismatch(
                tensor: name, needed: block.elementCount, provided: destination.count)
        }
        guard block.elementCount > 0, let output = destination.baseAddress else { return }

        let columnCount = block.columns.count
        try ScalarConversion.fp8E4M3Table.withUnsafeBufferPointer { table in
            try weightFile.readBlock(block, name: name) { bytes, count, first in
                let source = bytes.assumingMemoryBound(to: UInt8.self)
                for rowIndex in 0 ..< count / columnCount {
                    let element = first + rowIndex * columnCount
                    let row = block.rows.lowerBound + element / columnCount
                    let scaleRow = (row / blockSize - scaleRows.lowerBound) * scaleColumns.count
                    let target = output + element, bytesOfRow = source + rowIndex * columnCount
                    // Walk the columns one scale block at a time.
                    var column = block.columns.lowerBound
                    while column < block.columns.upperBound {
                        let segmentEnd = min(block.columns.upperBound, (column / blockSize + 1) * blockSize)
                        let scale = scales[scaleRow + column / blockSize - scaleColumns.lowerBound]
                        for index in column..<segmentEnd {
                            let local = index - block.columns.lowerBound
                            target[local] = table[Int(bytesOfRow[local])] * scale
                        }
                        column = segmentEnd
                    }
                }
            }
        }
        weightFile.recordRead(block.elementCount)
    }
}

extension FP8BlockDequantizer {
    /// A block of an FP8 weight as stored: its e4m3 bytes (row-major) and the scales of every tile
    /// it touches (`[scaleRows, scaleColumns]`), nothing dequantized.
    public struct StoredBlock: Sendable {
        public var bytes: [UInt8]
        public var scales: [Float]
        public var scaleRows: Range<Int>
        public var scaleColumns: Range<Int>
    }

    /// Reads `rows × columns` of the FP8 weight `name` as stored, with its scales (checked as
    /// `dequantize` checks them).
    public static func stored(weightFile: SafeTensorsFile, name: String, scaleFile: SafeTensorsFile, scaleName: String,
                              rows: Range<Int>, columns: Range<Int>, blockSize: Int) throws -> StoredBlock {
        let (block, scaleRows, scaleColumns, scales) = try scaledBlock(weightFile: weightFile, name: name, scaleFile: scaleFile,
                                                                        scaleName: scaleName, rows: rows, columns: columns, blockSize: blockSize)
        var bytes = [UInt8](repeating: 0, count: block.elementCount)
        if block.elementCount > 0 {
            try bytes.withUnsafeMutableBytes { try weightFile.readBlock(block, name: name, directInto: $0.baseAddress!) { _, _, _ in } }
            weightFile.recordRead(block.elementCount)
        }
        return StoredBlock(bytes: bytes, scales: scales, scaleRows: scaleRows, scaleColumns: scaleColumns)
    }

    /// The checks every FP8 read makes, and the block's scales: the weight is 2-D F8_E4M3, its
    /// scale tensor has the shape the block size implies, and each scale the block uses is finite
    /// and positive (a zero, negative or NaN scale names the tile).
    static func scaledBlock(weightFile: SafeTensorsFile, name: String, scaleFile: SafeTensorsFile, scaleName: String,
                            rows: Range<Int>?, columns: Range<Int>?, blockSize: Int)
        throws -> (block: TensorBlock, scaleRows: Range<Int>, scaleColumns: Range<Int>, scales: [Float]) {
        guard blockSize > 0 else { throw SafeTensorsReadError.invalidBlockSize(blockSize) }
        let weightInfo = try weightFile.info(name)
        guard weightInfo.shape.count == 2 else {
            throw SafeTensorsReadError.wrongRank(
                file: weightFile.path, tensor: name, shape: weightInfo.shape, expected: "a 2-D FP8 weight")
        }
        guard weightInfo.dtype == .F8_E4M3 else {
            throw SafeTensorsReadError.unsupportedDType(
                file: weightFile.path, tensor: name, dtype: weightInfo.dtype, operation: "FP8 block dequantization (F8_E4M3)")
        }
        let block = try weightFile.block(name, rows: rows, columns: columns)
        let scaleInfo = try scaleFile.info(scaleName)
        let expected = [ceilDivide(weightInfo.shape[0], blockSize), ceilDivide(weightInfo.shape[1], blockSize)]
        guard scaleInfo.shape == expected else {
            throw SafeTensorsReadError.scaleShapeMismatch(
                file: scaleFile.path, weight: name, weightShape: weightInfo.shape, scale: scaleName,
                scaleShape: scaleInfo.shape, expectedShape: expected, blockSize: blockSize)
        }
        guard block.elementCount > 0 else { return (block, 0..<0, 0..<0, []) }
        let scaleRows = (block.rows.lowerBound / blockSize)..<((block.rows.upperBound - 1) / blockSize + 1)
        let scaleColumns = (block.columns.lowerBound / blockSize)..<((block.columns.upperBound - 1) / blockSize + 1)
        let scales = try scaleFile.readFloats(scaleName, rows: scaleRows, columns: scaleColumns)
        if let bad = scales.firstIndex(where: { !($0.isFinite && $0 > 0) }) {
            throw SafeTensorsReadError.badScale(file: scaleFile.path, scale: scaleName, weight: name,
                                                tile: [scaleRows.lowerBound + bad / scaleColumns.count, scaleColumns.lowerBound + bad % scaleColumns.count],
                                                value: scales[bad])
        }
        return (block, scaleRows, scaleColumns, scales)
    }
}

extension SafeTensorsFile {
    /// Dequantizes rows × columns of the FP8 weight `name` with its companion scale tensor
    /// (``FP8BlockDequantizer/scaleName(forWeight:)``) from this same file.
    public func readDequantizedFP8(_ name: String, rows: Range<Int>? = nil, columns: Range<Int>? = nil,
                                   blockSize: Int = 128, into destination: UnsafeMutableBufferPointer<Float>) throws {
        try FP8BlockDequantizer.dequantize(
            weightFile: self, name: name, scaleFile: self, scaleName: FP8BlockDequantizer.scaleName(forWeight: name),
            rows: rows, columns: columns, blockSize: blockSize, into: destination)
    }

    /// Convenience form of ``readDequantizedFP8(_:rows:columns:blockSize:into:)`` returning a new array.
    public func readDequantizedFP8(_ name: String, rows: Range<Int>? = nil, columns: Range<Int>? = nil,
                                   blockSize: Int = 128) throws -> [Float] {
        let block = try block(name, rows: rows, columns: columns)
        var result = [Float](repeating: 0, count: block.elementCount)
        try result.withUnsafeMutableBufferPointer {
            try readDequantizedFP8(name, rows: rows, columns: columns, blockSize: blockSize, into: $0)
        }
        return result
    }
}
