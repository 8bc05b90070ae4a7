/// A count (elements, bytes, FLOPs) that does not fit in a 64-bit `Int`. Sizes come from flags,
/// config files, input files and checkpoints, so their products are computed with checked
/// operations that throw this, never with trapping ones.
public struct CountOverflow: Error, Equatable, Sendable, CustomStringConvertible {
    /// What was being counted, e.g. "FLOPs of a [m, k]·[k, n] product".
    public var what: String
    /// The factors or terms that overflowed.
    public var operands: [Int]

    public init(what: String, operands: [Int]) {
        self.what = what
        self.operands = operands
    }

    public var description: String {
        "the count of \(what) overflows 64 bits (\(operands.map(String.init).joined(separator: ", "))) — use smaller sizes"
    }
}

/// Checked arithmetic on counts: products and sums that report overflow instead of trapping.
public enum Checked {
    /// `factors[0] · factors[1] · …`, or `CountOverflow` naming `what`.
    public static func product(_ factors: Int..., what: @autoclosure () -> String) throws(CountOverflow) -> Int {
        try product(of: factors, what: what())
    }

    /// The product of `factors`, or `CountOverflow` naming `what`.
    public static func product(of factors: [Int], what: @autoclosure () -> String) throws(CountOverflow) -> Int {
        var result = 1
        for f in factors {
            let (p, overflow) = result.multipliedReportingOverflow(by: f)
            guard !overflow else { throw CountOverflow(what: what(), operands: factors) }
            result = p
        }
        return result
    }

    /// `terms[0] + terms[1] + …`, or `CountOverflow` naming `what`.
    public static func sum(_ terms: Int..., what: @autoclosure () -> String) throws(CountOverflow) -> Int {
        try sum(of: terms, what: what())
    }

    /// The sum of `terms`, or `CountOverflow` naming `what`.
    public static func sum(of terms: some Sequence<Int>, what: @autoclosure () -> String) throws(CountOverflow) -> Int {
        var result = 0
        for t in terms {
            let (s, overflow) = result.addingReportingOverflow(t)
            guard !overflow else { throw CountOverflow(what: what(), operands: [result, t]) }
            result = s
        }
        return result
    }
}
