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
        let size = block.info.dtype.byteSize
        let columnCount = block.columns.count
        for (index, row) in block.rows.enumerated() {
            let source = dataPointer(block.info, offset: (row * block.width + block.columns.lowerBound) * size)
            Self.convert(block.info.dtype, from: source, count: columnCount, into: output + index * columnCount)
        }
        recordRead(block.elementCount * size)
    }

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
        var result: [Int] = []
        result.reserveCapacity(count)
        switch info.dtype {
        case .I32:
            guard count > 0 else { break }
            let source = dataPointer(info)
            for index in 0..<count {
                result.append(Int(Int32(littleEndian: source.loadUnaligned(fromByteOffset: index * 4, as: Int32.self))))
            }
        case .I64:
            guard count > 0 else { break }
            let source = dataPointer(info)
            for index in 0..<count {
                let value = Int64(littleEndian: source.loadUnaligned(fromByteOffset: index * 8, as: Int64.self))
                guard let converted = Int(exactly: value) else {
                    throw SafeTensorsReadError.integerOverflow(file: path, tensor: name)
                }
                result.append(converted)
            }
        default:
            throw SafeTensorsReadError.unsupportedDType(
                file: path, tensor: name, dtype: info.dtype, operation: "readInts (I32, I64)")
        }
        recordRead(info.byteCount)
        return result
    }
}
