/// Which block of a linear weight `W [out, in]` one rank holds: the sharding axis of a layer,
/// kept apart from how the block is stored (`WeightStorage`). Built from the rank's `Shard`.
public enum Partition: Equatable, Sendable {
    /// The whole weight on every rank.
    case replicated
    /// W's output rows `outRows` (Megatron's column parallel).
    case column(outRows: Range<Int>)
    /// W's input columns `inColumns`, of every row (Megatron's row parallel).
    case row(inColumns: Range<Int>)

    /// Rank `shard`'s block of `W [outFeatures, inFeatures]` split as `layout`. Throws when a
    /// width is not positive or tp does not divide the split width, naming the layer `name`.
    public init(_ layout: Layout, of name: String, inFeatures: Int, outFeatures: Int, shard: Shard) throws(TPError) {
        switch layout {
        case .replicated:
            guard inFeatures > 0 else { throw TPError.nonPositive(name: name + " in", width: inFeatures) }
            guard outFeatures > 0 else { throw TPError.nonPositive(name: name + " out", width: outFeatures) }
            self = .replicated
        case .column:
            guard inFeatures > 0 else { throw TPError.nonPositive(name: name + " in", width: inFeatures) }
            self = .column(outRows: try shard.range(of: outFeatures, for: name + " output"))
        case .row:
            guard outFeatures > 0 else { throw TPError.nonPositive(name: name + " out", width: outFeatures) }
            self = .row(inColumns: try shard.range(of: inFeatures, for: name + " input"))
        }
    }

    public var layout: Layout {
        switch self {
        case .replicated: .replicated
        case .column: .column
        case .row: .row
        }
    }

    /// The rows of `W [out, in]` this rank holds (its outputs), of `outFeatures`.
    public func rows(of outFeatures: Int) -> Range<Int> {
        if case let .column(rows) = self { return rows }
        return 0..<outFeatures
    }

    /// The columns of `W [out, in]` this rank holds (its inputs), of `inFeatures`.
    public func columns(of inFeatures: Int) -> Range<Int> {
        if case let .row(cols) = self { return cols }
        return 0..<inFeatures
    }
}
