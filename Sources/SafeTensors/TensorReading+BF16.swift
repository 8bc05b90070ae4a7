import Foundation

extension SafeTensorsFile {
    /// Copies a block of a BF16 tensor as it is stored — its 16-bit patterns, never widened — for a
    /// model held in bf16. Touches only the bytes of the block (each row's slice for a column block).
    ///
    /// - Parameters:
    ///   - rows: rows to read (all when nil); for a 1-D tensor, the elements.
    ///   - columns: columns to read (all when nil); must be nil for a 1-D tensor.
    ///   - destination: receives the bit patterns row-major; must hold exactly rows × columns elements.
    /// - Throws: ``SafeTensorsReadError`` when the tensor is missing, not BF16, the block is out of
    ///   bounds, or the destination has another size.
    public func readBF16Bits(_ name: String, rows: Range<Int>? = nil, columns: Range<Int>? = nil,
                             into destination: UnsafeMutableBufferPointer<UInt16>) throws {
        let block = try block(name, rows: rows, columns: columns)
        guard block.info.dtype == .BF16 else {
            throw SafeTensorsReadError.unsupportedDType(file: path, tensor: name, dtype: block.info.dtype, operation: "readBF16Bits (BF16)")
        }
        guard destination.count == block.elementCount else {
            throw SafeTensorsReadError.destinationSizeMismatch(tensor: name, needed: block.elementCount, provided: destination.count)
        }
        guard block.elementCount > 0, let output = destination.baseAddress else { return }
        // safetensors data is little-endian, as is every platform this module targets: the bytes go
        // straight into place, a row's slice at a time for a column block.
        try readBlock(block, name: name, directInto: UnsafeMutableRawPointer(output)) { _, _, _ in }
        recordRead(block.elementCount * 2)
    }
}
