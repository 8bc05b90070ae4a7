/// How far a result is from a reference: the largest absolute difference and that difference
/// relative to the reference's largest magnitude (so the tolerance scales with the output).
public struct Comparison: Equatable, Sendable, Codable {
    public var maxAbsDiff: Float
    public var maxAbsReference: Float
    /// `maxAbsDiff / maxAbsReference` (0 when both are 0). NaN anywhere makes it infinite.
    public var relative: Float {
        if !maxAbsDiff.isFinite { return .infinity }
        return maxAbsReference > 0 ? maxAbsDiff / maxAbsReference : maxAbsDiff
    }

    public init(_ result: Matrix, reference: Matrix) throws(ShapeError) {
        guard result.rows == reference.rows, result.cols == reference.cols else {
            throw ShapeError(op: "compare", result.shape, reference.shape, hint: "a result and its reference must have the same shape")
        }
        var d: Float = 0, r: Float = 0
        for k in result.storage.indices {
            let diff = abs(result.storage[k] - reference.storage[k])
            if !diff.isFinite { d = .infinity } else { d = max(d, diff) }
            r = max(r, abs(reference.storage[k]))
        }
        maxAbsDiff = d
        maxAbsReference = r
    }

    public func passes(relativeTolerance: Float) -> Bool { relative <= relativeTolerance }
}
