import Foundation

/// A validated rows × columns block of a 1-D or 2-D tensor.
struct TensorBlock {
    var info: TensorInfo
    /// Number of columns of the whole tensor (1 for a 1-D tensor).
    var width: Int
    var rows: Range<Int>
    var columns: Range<Int>
    var elementCount: Int { rows.count * columns.count }
}

extension SafeTensorsFile {
    /// Checks that `name` is a 1-D or 2-D tensor and that the requested block lies inside it.
    /// A 1-D tensor of length N is treated as N rows of one column; `columns` must then be nil.
    func block(_ name: String, rows: Range<Int>?, columns: Range<Int>?) throws -> TensorBlock {
        let info = try info(name)
        let height: Int, width: Int
        switch info.shape.count {
        case 1 where columns == nil:
            (height, width) = (info.shape[0], 1)
        case 2:
            (height, width) = (info.shape[0], info.shape[1])
        default:
            throw SafeTensorsReadError.wrongRank(
                file: path, tensor: name, shape: info.shape,
                expected: columns == nil ? "a 1-D or 2-D tensor" : "a 2-D tensor (a column range was given)")
        }
        let rowRange = rows ?? 0..<height
        let columnRange = columns ?? 0..<width
        guard rowRange.lowerBound >= 0, rowRange.upperBound <= height,
              columnRange.lowerBound >= 0, columnRange.upperBound <= width
        else {
            throw SafeTensorsReadError.blockOutOfBounds(
                file: path, tensor: name, shape: info.shape, rows: rowRange, columns: columnRange)
        }
        return TensorBlock(info: info, width: width, rows: rowRange, columns: columnRange)
    }

    /// Converts `count` elements at `source` to Float. `dtype` must be F32, F64, F16, BF16 or F8_E4M3.
    static func convert(_ dtype: DType, from source: UnsafeRawPointer, count: Int, into destination: UnsafeMutablePointer<Float>) {
        switch dtype {
        case .F32:
            // safetensors data is little-endian, as is every platform this module targets.
            memcpy(destination, source, count * 4)
        case .F64:
            for index in 0..<count {
                let bits = UInt64(littleEndian: source.loadUnaligned(fromByteOffset: index * 8, as: UInt64.self))
                destination[index] = ScalarConversion.f64ToFloat(bits)
            }
        case .BF16:
            for index in 0..<count {
                let bits = UInt16(littleEndian: source.loadUnaligned(fromByteOffset: index * 2, as: UInt16.self))
                destination[index] = ScalarConversion.bf16ToFloat(bits)
            }
        case .F16:
            for index in 0..<count {
                let bits = UInt16(littleEndian: source.loadUnaligned(fromByteOffset: index * 2, as: UInt16.self))
                destination[index] = ScalarConversion.f16ToFloat(bits)
            }
        case .F8_E4M3:
            ScalarConversion.fp8E4M3Table.withUnsafeBufferPointer { table in
                let bytes = source.assumingMemoryBound(to: UInt8.self)
                for index in 0..<count { destination[index] = table[Int(bytes[index])] }
            }
        default:
            preconditionFailure("convert called with non-float dtype \(dtype)")
        }
    }

    /// Converts a block of a 2-D tensor (or rows of a 1-D tensor) to Float32.
    ///
    /// Touches only the bytes of the block: for a column block, each row's slice is read separately.
    /// Supports F32, F64 (rounded to nearest), F16, BF16 and F8_E4M3 (raw FP8 values, without scales; see
    /// ``readDequantizedFP8(_:rows:columns:blockSize:into:)`` for scaled weights).
    ///
    /// - Parameters:
    ///   - rows: rows to read (all when nil); for a 1-D tensor, the elements.
    ///   - columns: columns to read (all when nil); must be nil for a 1-D tensor.
    ///   - destination: receives the block row-major; must hold exactly rows × columns elements.
    public func readFloats(_ name: String, rows: Range<Int>? = nil, columns: Range<Int>? = nil,
                           into destination: UnsafeMutableBufferPointer<Float>) throws {
        let block = try block(name, rows: rows, columns: columns)
        guard block.info.dtype.isFloatConvertible else {
            throw SafeTensorsReadError.unsupportedDType(
                file: path, tensor: name, dtype: block.info.dtype, operation: "readFloats (F32, F64, F16, BF16, F8_E4M3)")
        }
        guard destination.count == block.elementCount else {
            throw SafeTensorsReadError.destinationSizeMismatch(
                tensor: name, needed: block.elementCount, provided: destination.count)
        }
        guard block.elementCount > 0, let output = destination.baseAddress else { return }
        try readBlock(block, name: name, directInto: block.info.dtype == .F32 ? UnsafeMutableRawPointer(output) : nil) { bytes, count, index in
            Self.convert(block.info.dtype, from: bytes, count: count, into: output + index)
        }
        recordRead(block.elementCount * block.info.dtype.byteSize)
    }

    /// Reads a block's bytes in pieces of at most `Self.readPiece` bytes and hands each piece to
    /// `convert(bytes, elements, firstElement)`: whole rows at once when the block spans the
    /// tensor's width, one row's slice at a time otherwise. With `directInto` (a destination whose
    /// elements are the file's bytes as they are, i.e. F32) the bytes are read straight into place.
    func readBlock(_ block: TensorBlock, name: String, directInto direct: UnsafeMutableRawPointer? = nil,
                   convert: (UnsafeRawPointer, Int, Int) -> Void) throws {
        let size = block.info.dtype.byteSize, columns = block.columns.count
        let contiguous = block.columns.count == block.width
        let rowsPerPiece = contiguous ? max(1, Self.readPiece / max(columns * size, 1)) : 1
        let scratch = direct == nil
            ? UnsafeMutableRawPointer.allocate(byteCount: min(rowsPerPiece, block.rows.count) * columns * size, alignment: 16) : nil
        defer { scratch?.deallocate() }
        var row = block.rows.lowerBound
        while row < block.rows.upperBound {
            let rows = min(rowsPerPiece, block.rows.upperBound - row), count = rows * columns
            let first = (row - block.rows.lowerBound) * columns
            let offset = fileOffset(block.info, offset: (row * block.width + block.columns.lowerBound) * size)
            if let direct {
                try read(name, at: offset, count: count * size, into: direct + first * size)
            } else if let scratch {
                try read(name, at: offset, count: count * size, into: scratch)
                convert(UnsafeRawPointer(scratch), count, first)
            }
            row += rows
        }
    }

    /// Largest piece of a block read at once (bounds the scratch buffer of a conversion).
    static let readPiece = 4 << 20

    /// Convenience form of ``readFloats(_:rows:columns:into:)`` returning a new array.
    public func readFloats(_ name: String, rows: Range<Int>? = nil, columns: Range<Int>? = nil) throws -> [Float] {
        let block = try block(name, rows: rows, columns: columns)
        var result = [Float](repeating: 0, count: block.elementCount)
        try result.withUnsafeMutableBufferPointer { try readFloats(name, rows: rows, columns: columns, into: $0) }
        return result
    }

    /// Reads a whole I32 or I64 tensor of any shape (row-major) as `Int`s, e.g. positions or `cu_seqlens`.
    public func readInts(_ name: String) throws -> [Int] {
        let info = try info(name)
        let count = info.byteCount / info.dtype.byteSize
        guard info.dtype == .I32 || info.dtype == .I64 else {
            throw SafeTensorsReadError.unsupportedDType(
                file: path, tensor: name, dtype: info.dtype, operation: "readInts (I32, I64)")
        }
        var result: [Int] = []
        result.reserveCapacity(count)
        guard count > 0 else { return result }
        let bytes = UnsafeMutableRawPointer.allocate(byteCount: info.byteCount, alignment: 8)
        defer { bytes.deallocate() }
        try read(name, at: fileOffset(info), count: info.byteCount, into: bytes)
        if info.dtype == .I32 {
            for index in 0..<count {
                result.append(Int(Int32(littleEndian: bytes.loadUnaligned(fromByteOffset: index * 4, as: Int32.self))))
            }
        } else {
            for index in 0..<count {
                let value = Int64(littleEndian: bytes.loadUnaligned(fromByteOffset: index * 8, as: Int64.self))
                guard let converted = Int(exactly: value) else {
                    throw SafeTensorsReadError.integerOverflow(file: path, tensor: name)
                }
                result.append(converted)
            }
        }
        recordRead(info.byteCount)
        return result
    }
}
