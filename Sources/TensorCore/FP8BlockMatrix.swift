import CKernels

/// A block of a weight held in fp8 e4m3 with one f32 scale per `blockSize × blockSize` tile of the
/// global tensor (DeepSeek-V3's `weight_scale_inv`): `[rows, cols]`, row-major (`[out, in]`), one
/// byte per value. Element (r, c) is `e4m3(values[r·cols + c]) × scale(r, c)`.
///
/// The scales are those of every global tile the block touches, so a block whose edges fall
/// inside a tile (a shard boundary at tp = 3, or 136 features split in two) keeps the whole tile's
/// scale rather than being refused: `scales` is `[scaleRows, scaleCols]`, column c uses scale
/// column `(columnOffset + c) / blockSize`, and row r scale row `rowScale[r]`, or
/// `(rowOffset + r) / blockSize` when the rows are consecutive in the stored tensor (`rowScale` nil).
public struct FP8BlockMatrix: Sendable, Equatable {
    public let rows: Int
    public let cols: Int
    public let blockSize: Int
    /// `[rows, cols]` e4m3 bit patterns.
    public let values: [UInt8]
    /// `[scaleRows, scaleCols]` f32, each > 0 and finite.
    public let scales: [Float]
    public let scaleCols: Int
    /// Where row 0 and column 0 sit within their tiles (global index mod `blockSize`).
    public let rowOffset: Int
    public let columnOffset: Int
    /// Each row's scale row, for rows gathered from several places of the stored tensor; nil when
    /// the rows are consecutive there.
    public let rowScale: [Int32]?

    public init(rows: Int, cols: Int, blockSize: Int, values: [UInt8], scales: [Float], scaleCols: Int,
                rowOffset: Int, columnOffset: Int, rowScale: [Int32]? = nil) {
        precondition(values.count == rows * cols && blockSize > 0 && scaleCols >= 0 && (scaleCols == 0 || scales.count % scaleCols == 0),
                     "FP8BlockMatrix: \(values.count) values for [\(rows), \(cols)], \(scales.count) scales in \(scaleCols) columns")
        precondition(rowScale == nil || rowScale!.count == rows, "FP8BlockMatrix: \(rowScale!.count) row scales for \(rows) rows")
        (self.rows, self.cols, self.blockSize, self.values, self.scales, self.scaleCols) = (rows, cols, blockSize, values, scales, scaleCols)
        (self.rowOffset, self.columnOffset, self.rowScale) = (rowOffset, columnOffset, rowScale)
    }

    /// Rows `rows` × columns `cols` of a tensor of `shape` (`[out, in]`) quantized per global
    /// `b × b` tile, DeepSeek-V3's rule (`FP8Quantization`): `read(r, c)` gives the tensor's f32
    /// values of rows r × columns c, asked one strip of tile rows at a time over the whole tiles'
    /// columns the block touches (at most one tile row of f32 at a time), so each tile's scale comes
    /// from the whole tile and every block of the tensor gets the same values as the whole.
    /// Throws `FP8Quantization.NonFiniteTile` for a tile with a NaN or infinity, and what `read` throws.
    public static func quantizing(rows: Range<Int>, cols: Range<Int>, of shape: Shape, blockSize b: Int,
                                  read: (Range<Int>, Range<Int>) throws -> Matrix) throws -> FP8BlockMatrix {
        let outRows = shape.dims.first ?? 0, inCols = shape.dims.last ?? 0
        let tileRows = FP8BlockMatrix.tiles(first: rows.lowerBound, count: rows.count, blockSize: b)
        let tileCols = FP8BlockMatrix.tiles(first: cols.lowerBound, count: cols.count, blockSize: b)
        let readCols = tileCols.lowerBound * b ..< min(inCols, tileCols.upperBound * b)     // whole tiles' columns
        var values = [UInt8](repeating: 0, count: rows.count * cols.count)
        var scales = [Float](repeating: 1, count: tileRows.count * tileCols.count)
        for (i, tr) in tileRows.enumerated() {
            let stripRows = tr * b ..< min(outRows, (tr + 1) * b)
            let strip = try read(stripRows, readCols)                                              // [≤b, readCols]
            for (j, tc) in tileCols.enumerated() {
                let c0 = tc * b - readCols.lowerBound, c1 = min(readCols.count, c0 + b)
                var amax: Float = 0
                strip.storage.withUnsafeBufferPointer { s in
                    for r in 0..<strip.rows { amax = max(amax, FP8Quantization.amax(UnsafeBufferPointer(rebasing: s[r * strip.cols + c0 ..< r * strip.cols + c1]))) }
                }
                guard amax.isFinite else { throw FP8Quantization.NonFiniteTile(row: tr, column: tc) }
                scales[i * tileCols.count + j] = FP8Quantization.scale(amax: amax)
            }
            // The block's own rows of this strip, its own columns, each with its tile's scale.
            let own = max(rows.lowerBound, stripRows.lowerBound) ..< min(rows.upperBound, stripRows.upperBound)
            strip.storage.withUnsafeBufferPointer { s in
                values.withUnsafeMutableBufferPointer { v in
                    for r in own {
                        var c = cols.lowerBound
                        while c < cols.upperBound {
                            let tileEnd = min(cols.upperBound, (c / b + 1) * b)
                            let scale = scales[i * tileCols.count + c / b - tileCols.lowerBound]
                            let from = (r - stripRows.lowerBound) * strip.cols + c - readCols.lowerBound
                            let to = (r - rows.lowerBound) * cols.count + c - cols.lowerBound
                            FP8Quantization.encode(UnsafeBufferPointer(rebasing: s[from ..< from + tileEnd - c]),
                                                   into: UnsafeMutableBufferPointer(rebasing: v[to ..< to + tileEnd - c]), scale: scale)
                            c = tileEnd
                        }
                    }
                }
            }
        }
        return FP8BlockMatrix(rows: rows.count, cols: cols.count, blockSize: b, values: values, scales: scales, scaleCols: tileCols.count,
                              rowOffset: rows.lowerBound % b, columnOffset: cols.lowerBound % b)
    }

    /// `m` (a whole tensor `[rows, cols]`) quantized per `blockSize` tile, scale = amax / 448 —
    /// for benchmarks and tests; a layer's block is quantized by `FP8BlockStorage`, tile by tile.
    public init(quantizing m: Matrix, blockSize b: Int = 128) throws {
        self = try Self.quantizing(rows: 0..<m.rows, cols: 0..<m.cols, of: Shape(m.rows, m.cols), blockSize: b) { r, c in
            m.rows(r).columns(c)
        }
    }

    /// Bytes held: one per value, four per scale (and per row's scale index where the rows are gathered).
    public var bytes: Int { values.count + 4 * scales.count + 4 * (rowScale?.count ?? 0) }

    /// The global tiles `count` elements starting at global index `first` touch: `ceil` over the
    /// block grid, for a block that starts or ends inside a tile.
    public static func tiles(first: Int, count: Int, blockSize: Int) -> Range<Int> {
        count == 0 ? first / blockSize ..< first / blockSize : first / blockSize ..< (first + count - 1) / blockSize + 1
    }

    /// Runs `body` with the C kernels' view of rows `r0 ..< r0 + n` (pointers valid only inside).
    func withTile<R>(rows r0: Int, _ body: (UnsafePointer<UInt8>, UnsafePointer<Float>, UnsafePointer<Int32>?, Int) -> R) -> R {
        values.withUnsafeBufferPointer { v in
            scales.withUnsafeBufferPointer { s in
                let w = v.baseAddress! + r0 * cols, sc = s.baseAddress!
                guard let rowScale else { return body(w, sc, nil, rowOffset + r0) }
                return rowScale.withUnsafeBufferPointer { body(w, sc, $0.baseAddress! + r0, 0) }
            }
        }
    }

    /// Rows `r0 ..< r0 + n` dequantized as a bf16 model holds them, bf16(e4m3 × scale), into `dst`
    /// (`[n, cols]`, leading dimension `ldd`), at `isa` (capped at what this CPU runs; the bits are the same at every level).
    public func dequantize(rows r0: Int, count n: Int, into dst: UnsafeMutablePointer<BFloat16>, ldd: Int, isa: KernelISA = .best) {
        guard n > 0, cols > 0 else { return }
        withTile(rows: r0) { w, s, rs, row0 in
            mlatp_fp8_dequant_bf16(n, cols, w, cols, s, scaleCols, rs, row0, columnOffset, blockSize, dst.bits, ldd, isa.rawValue)
        }
    }

    /// The block's values exactly, e4m3 × scale in f32 (no bf16 rounding): what an f32 model of
    /// these fp8 weights holds, for references and checks.
    public func dequantizedF32() -> Matrix {
        Matrix(rows: rows, cols: cols) { out in
            for r in 0..<rows {
                let sr = (rowScale.map { Int($0[r]) } ?? (rowOffset + r) / blockSize) * scaleCols
                for c in 0..<cols {
                    out[r * cols + c] = FP8Quantization.decode(values[r * cols + c]) * scales[sr + (columnOffset + c) / blockSize]
                }
            }
        }
    }

    /// Rows `r0 ..< r0 + n` dequantized to the same bf16 values, kept as f32, into `dst` (`[n, cols]`, leading dimension `ldd`).
    public func dequantize(rows r0: Int, count n: Int, into dst: UnsafeMutablePointer<Float>, ldd: Int, isa: KernelISA = .best) {
        guard n > 0, cols > 0 else { return }
        withTile(rows: r0) { w, s, rs, row0 in
            mlatp_fp8_dequant_f32(n, cols, w, cols, s, scaleCols, rs, row0, columnOffset, blockSize, dst, ldd, isa.rawValue)
        }
    }

    /// The whole block dequantized to bf16 (for kernels that read a weight themselves, and export).
    public func dequantized() -> BF16Matrix { dequantized(rows: 0..<rows) }

    /// Rows `range` dequantized to bf16, `[range.count, cols]`.
    public func dequantized(rows range: Range<Int>) -> BF16Matrix {
        BF16Matrix(rows: range.count, cols: cols) { out in dequantize(rows: range.lowerBound, count: range.count, into: out.baseAddress!, ldd: cols) }
    }
}

/// DeepSeek-V3's weight quantization: each tile's scale is amax / 448 (e4m3's largest finite
/// value), and each value is stored as e4m3(value / scale), rounded to nearest even. A tile of
/// zeros gets scale 1 (amax / 448 would be 0 and every value 0/0).
public enum FP8Quantization {
    /// A tile holding a NaN or an infinity: its amax, and so its scale, would not be finite.
    public struct NonFiniteTile: Error, Equatable {
        public let row: Int
        public let column: Int
    }

    /// The largest finite e4m3 value.
    public static let maxFinite: Float = 448

    /// The scale of a tile whose largest magnitude is `amax`.
    public static func scale(amax: Float) -> Float { amax > 0 ? amax / maxFinite : 1 }

    /// The largest |v| of `values` (NaN if any is NaN).
    public static func amax(_ values: UnsafeBufferPointer<Float>) -> Float {
        guard let p = values.baseAddress else { return 0 }
        return mlatp_absmax(p, values.count)
    }

    /// `dst[i] = e4m3(src[i] / scale)`.
    public static func encode(_ src: UnsafeBufferPointer<Float>, into dst: UnsafeMutableBufferPointer<UInt8>, scale: Float) {
        precondition(dst.count >= src.count, "FP8Quantization.encode: \(src.count) values into \(dst.count)")
        guard let s = src.baseAddress, let d = dst.baseAddress else { return }
        mlatp_fp8_encode(s, d, src.count, scale)
    }

    /// e4m3 of one value (rounded to nearest even, saturated at ±448).
    public static func encode(_ v: Float) -> UInt8 { mlatp_fp8_encode_one(v) }

    /// The value of an e4m3 bit pattern, exactly (0x7f and 0xff are NaN).
    public static func decode(_ b: UInt8) -> Float {
        let mag = UInt32(b & 0x7f)
        let v: Float = mag == 0x7f ? .nan : Float(bitPattern: mag << 20) * 0x1p120
        return b & 0x80 != 0 ? -v : v
    }
}
