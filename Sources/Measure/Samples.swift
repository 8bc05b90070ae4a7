/// Repeated measurements (seconds, or any rate) with their median, min and max: the one
/// samples type of bench, the sweep's step timer and the rate probe.
public struct Samples: Codable, Equatable, Sendable {
    public var median: Double
    public var min: Double
    public var max: Double
    public var samples: [Double]

    public init(_ samples: [Double]) {
        let sorted = samples.sorted()
        self.samples = samples
        min = sorted.first ?? 0
        max = sorted.last ?? 0
        if sorted.isEmpty {
            median = 0
        } else if sorted.count % 2 == 1 {
            median = sorted[sorted.count / 2]
        } else {
            median = (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
        }
    }

    /// The median over pairs of `f(self[i], other[i])`: a measurement against the reference
    /// taken right after it, so that slow drifts of a shared machine cancel in the ratio.
    public func paired(with other: Samples, _ f: (Double, Double) -> Double) -> Double {
        Samples(zip(samples, other.samples).map(f)).median
    }

    /// The median of `self[i] / other[i]`.
    public func pairedRatio(to other: Samples) -> Double {
        paired(with: other) { $0 / Swift.max($1, 1e-12) }
    }
}
