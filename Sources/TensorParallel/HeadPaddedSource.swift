import TensorCore

/// A weight source that pads some tensors with zeros beyond the rows or columns the base holds:
/// the per-head projections of a layer whose heads are padded to a multiple of tp (SGLang's way
/// when tp does not divide the heads). Row `r ≥ rows[name]` of a padded tensor (and element
/// `r ≥ rows[name]` of its bias) is 0, and so is column `c ≥ columns[name]`; every other block
/// is asked of `base` with the tensor's real shape, so the real values are the base's own,
/// whatever tp. A padded head then adds exactly zero: zero queries, keys, values and gate, and
/// zero o_proj columns.
public struct HeadPaddedSource: WeightSource {
    public let base: WeightSource
    /// Real rows of the tensors padded by rows (`name.weight` and its `name.bias`, by `name`).
    public let rows: [String: Int]
    /// Real columns of the tensors padded by columns.
    public let columns: [String: Int]

    public init(_ base: WeightSource, rows: [String: Int], columns: [String: Int]) {
        self.base = base
        self.rows = rows
        self.columns = columns
    }

    private func module(_ name: String) -> String {
        for suffix in [".weight", ".bias"] where name.hasSuffix(suffix) { return String(name.dropLast(suffix.count)) }
        return name
    }

    public func block(_ name: String, shape: Shape, rows asked: Range<Int>, cols: Range<Int>, initializer: Initializer) throws -> Matrix {
        let m = module(name)
        let realRows = rows[m] ?? shape.dims[0], realCols = columns[m] ?? shape.dims[1]
        guard realRows < shape.dims[0] || realCols < shape.dims[1] else {
            return try base.block(name, shape: shape, rows: asked, cols: cols, initializer: initializer)
        }
        let r = asked.clamped(to: 0..<realRows), c = cols.clamped(to: 0..<realCols)
        var out = Matrix(rows: asked.count, cols: cols.count)                            // zeros where padded
        guard !r.isEmpty, !c.isEmpty else { return out }
        let real = try base.block(name, shape: Shape(realRows, realCols), rows: r, cols: c, initializer: initializer)
        for i in 0..<r.count {
            let to = (r.lowerBound - asked.lowerBound + i) * cols.count + (c.lowerBound - cols.lowerBound)
            out.storage.replaceSubrange(to ..< to + c.count, with: real.storage[i * c.count ..< (i + 1) * c.count])
        }
        return out
    }

    public func vector(_ name: String, count: Int, range: Range<Int>, initializer: Initializer) throws -> [Float] {
        guard let real = rows[module(name)], real < count else {
            return try base.vector(name, count: count, range: range, initializer: initializer)
        }
        let r = range.clamped(to: 0..<real)
        var out = [Float](repeating: 0, count: range.count)
        if !r.isEmpty {
            let values = try base.vector(name, count: real, range: r, initializer: initializer)
            out.replaceSubrange(r.lowerBound - range.lowerBound ..< r.upperBound - range.lowerBound, with: values)
        }
        return out
    }

    public func shape(of name: String) -> [Int]? { base.shape(of: name) }
    public func storedInFP8(_ name: String) -> Bool? { base.storedInFP8(name) }
    /// A padded tensor is never served as stored fp8 (the layer refuses fp8 with padded heads);
    /// the others are the base's.
    public func fp8Block(_ name: String, shape: Shape, rows asked: Range<Int>, cols: Range<Int>, initializer: Initializer) throws -> FP8BlockMatrix? {
        let m = module(name)
        guard rows[m] == nil && columns[m] == nil else { return nil }
        return try base.fp8Block(name, shape: shape, rows: asked, cols: cols, initializer: initializer)
    }
}
