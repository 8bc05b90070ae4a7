import Foundation
import MLA
import SwiftMPI
import TensorCore
import TensorParallel

/// A sharded result against the unsharded one, as every report prints it.
public struct CheckResult: Codable, Sendable, Equatable {
    public var maxAbsDiff: Float
    public var relative: Float
    public var tolerance: Float
    public var pass: Bool

    public init(_ c: Comparison, tolerance: Float) {
        maxAbsDiff = c.maxAbsDiff
        relative = c.relative
        self.tolerance = tolerance
        pass = c.passes(relativeTolerance: tolerance)
    }
}

/// The one check of a sharded result against the unsharded forward, used by `run`, `linear`,
/// `bench` and the tests: rank 0 computes the reference and compares; every rank learns the
/// verdict (a broadcast), so every rank can end the job with the same exit code.
public enum TPCheck {
    /// Relative tolerance of the check (max |Δ| / max |reference|).
    public static let tolerance: Float = 1e-5

    public struct Verdict: Sendable {
        /// The comparison, on rank 0 only.
        public var result: CheckResult?
        /// Whether the check passed, on every rank (true when it was skipped).
        public var pass: Bool
    }

    /// Compares `output` with `reference()`, which only rank 0 runs. With `enabled` false
    /// nothing is compared, but every rank still enters the same broadcast.
    public static func verify(_ output: Matrix, world: Communicator, enabled: Bool = true, tolerance: Float = tolerance,
                              reference: () throws -> Matrix) throws -> Verdict {
        var result: CheckResult?
        if enabled && world.rank == 0 {
            result = CheckResult(try Comparison(output, reference: try reference()), tolerance: tolerance)
        }
        var pass: [Int64] = [result.map { $0.pass ? 1 : 0 } ?? 1]
        try world.broadcast(&pass, root: 0)
        return Verdict(result: result, pass: pass[0] == 1)
    }

    /// The unsharded layer's forward over the whole batch (rank 0's reference): every weight on one
    /// rank, the column gate, no collective; with `checkEveryStage` as the sharded forward had it,
    /// so that a non-finite value found here says the same about the stages checked.
    public static func unshardedForward(config: MLAConfig, layer: Int, source: WeightSource, x: Matrix, batch: Batch,
                                        checkEveryStage: Bool = false) throws -> Matrix {
        let whole = try MLAAttention(config: config, layer: layer, shard: .whole, gateLayout: .column, source: source)
        whole.checkEveryStage = checkEveryStage
        return try whole.forward(x, batch: batch, collectives: .local)
    }

    /// Whether rank 0 can afford the unsharded layer beside its own shard: its weights twice
    /// (the layer and its transposed load) within a quarter of this machine's memory.
    public static func fits(config: MLAConfig, physicalMemory: UInt64 = ProcessInfo.processInfo.physicalMemory) -> Bool {
        Double(ShardingPlan(config: config, tp: 1, gate: .column).bytesPerRank) * 2 < Double(physicalMemory) / 4
    }
}
