import Foundation
import MLA
import Planner
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

/// What the check adds for a bf16 run: whether it equals the unsharded bf16 forward (tp = 1 in
/// bf16) bit for bit, and how far it is from the unsharded f32 forward.
public struct PrecisionCheck: Codable, Sendable, Equatable {
    /// Every element equal to the unsharded forward in the run's precision, bit for bit.
    public var bitIdentical: Bool
    /// Elements that differ from it (of `elements`).
    public var differingElements: Int
    public var elements: Int
    /// Against the unsharded forward in f32 (the same weights, unrounded).
    public var f32: CheckResult
}

/// The one check of a sharded result against the unsharded forward, used by `run`, `linear`,
/// `bench` and the tests: rank 0 computes the reference and compares; every rank learns the
/// verdict (a broadcast), so every rank can end the job with the same exit code.
public enum TPCheck {
    /// Relative tolerance of the check (max |Δ| / max |reference|).
    public static let tolerance: Float = 1e-5

    /// The tolerance of a bf16 run's two comparisons (against the unsharded forward in bf16 and
    /// in f32): 2^-5, four bf16 steps at the output's largest magnitude (a bf16 value carries 8
    /// significant bits). The bf16 forward's own error and what the reduction order changes stay
    /// well below it (docs/precision.md has the measured values); a wrong split moves the output
    /// by tens of percent (docs/gate-bug.md).
    public static let bf16Tolerance: Float = 0x1p-5

    /// The tolerance for a run in `precision`.
    public static func tolerance(for precision: Precision) -> Float { precision == .f32 ? tolerance : bf16Tolerance }

    public struct Verdict: Sendable {
        /// The comparison, on rank 0 only: against the unsharded forward in the run's precision.
        public var result: CheckResult?
        /// Whether the check passed, on every rank (true when it was skipped).
        public var pass: Bool
        /// For a bf16 run, on rank 0: bit identity with that forward, and the comparison with f32.
        public var precision: PrecisionCheck?
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

    /// The check of a run in `precision`: for f32 `verify` against `reference(.f32)`; for bf16 rank 0
    /// compares with `reference(.bf16)` (tp = 1 in bf16: bit identity and the difference) and with
    /// `reference(.f32)`, each within `bf16Tolerance`, and passes when both do.
    public static func verify(_ output: Matrix, world: Communicator, enabled: Bool = true, precision: Precision,
                              reference: (Precision) throws -> Matrix) throws -> Verdict {
        guard precision == .bf16 else { return try verify(output, world: world, enabled: enabled) { try reference(.f32) } }
        var result: CheckResult?, checks: PrecisionCheck?
        if enabled && world.rank == 0 {
            let same = try reference(.bf16)
            result = CheckResult(try Comparison(output, reference: same), tolerance: bf16Tolerance)
            let differing = zip(output.storage, same.storage).filter { $0.bitPattern != $1.bitPattern }.count
            checks = PrecisionCheck(bitIdentical: differing == 0, differingElements: differing, elements: same.count,
                                    f32: CheckResult(try Comparison(output, reference: try reference(.f32)), tolerance: bf16Tolerance))
        }
        var pass: [Int64] = [(result?.pass ?? true) && (checks?.f32.pass ?? true) ? 1 : 0]
        try world.broadcast(&pass, root: 0)
        return Verdict(result: result, pass: pass[0] == 1, precision: checks)
    }

    /// The check of an invariant run (`--invariant`): `output` must equal `reference()` — the
    /// unsharded forward in the invariant mode, in the run's precision — bit for bit. The result's
    /// tolerance is 0; the precision check carries the count of differing elements.
    public static func verifyBits(_ output: Matrix, world: Communicator, enabled: Bool = true,
                                  reference: () throws -> Matrix) throws -> Verdict {
        var result: CheckResult?, checks: PrecisionCheck?
        if enabled && world.rank == 0 {
            let same = try reference()
            let r = CheckResult(try Comparison(output, reference: same), tolerance: 0)
            let differing = zip(output.storage, same.storage).filter { $0.bitPattern != $1.bitPattern }.count
            result = r
            checks = PrecisionCheck(bitIdentical: differing == 0, differingElements: differing, elements: same.count, f32: r)
        }
        var pass: [Int64] = [checks.map { $0.bitIdentical ? 1 : 0 } ?? 1]
        try world.broadcast(&pass, root: 0)
        return Verdict(result: result, pass: pass[0] == 1, precision: checks)
    }

    /// The unsharded layer's forward over the whole batch (rank 0's reference): every weight on one
    /// rank, the column gate (the config's own packing), no collective, weights held by `storage`;
    /// with `checkEveryStage` as the sharded forward had it, so that a non-finite value found here
    /// says the same about the stages checked.
    public static func unshardedForward(config: MLAConfig, layer: Int, source: WeightSource, x: Matrix, batch: Batch,
                                        storage: any WeightStorage.Type = F32Storage.self, checkEveryStage: Bool = false,
                                        mode: ForwardMode = .default) throws -> Matrix {
        let whole = try unshardedLayer(config: config, layer: layer, source: source, x: x, batch: batch, storage: storage, mode: mode)
        whole.checkEveryStage = checkEveryStage
        return try whole.forward(x, batch: batch, collectives: .local)
    }

    /// The reference in `precision` of a run held by `run`: the unsharded forward in the run's own
    /// format for its own precision; in f32, an f32 layer of the values the run holds (an fp8
    /// run's dequantized weights; bf16 and f32 runs: the source's values).
    public static func reference(_ precision: Precision, run: any WeightStorage.Type, config: MLAConfig, layer: Int,
                                 source: WeightSource, x: Matrix, batch: Batch, checkEveryStage: Bool = false,
                                 mode: ForwardMode = .default) throws -> Matrix {
        let (storage, values) = referenceStorage(precision, run: run, source: source)
        return try unshardedForward(config: config, layer: layer, source: values, x: x, batch: batch, storage: storage,
                                    checkEveryStage: checkEveryStage, mode: mode)
    }

    /// The format and weights of the reference in `precision` for a run held by `run` (see `reference`).
    public static func referenceStorage(_ precision: Precision, run: any WeightStorage.Type,
                                        source: WeightSource) -> (any WeightStorage.Type, WeightSource) {
        precision == run.activations ? (run, source) : (F32Storage.self, run.referenceValues(source))
    }

    /// The unsharded layer itself, for a caller that also wants its o_proj input.
    public static func unshardedLayer(config: MLAConfig, layer: Int, source: WeightSource, x: Matrix, batch: Batch,
                                      storage: any WeightStorage.Type = F32Storage.self, mode: ForwardMode = .default) throws -> MLAAttention {
        try MLAAttention(config: config, layer: layer, shard: .whole, gateLayout: .column, source: source, storage: storage, mode: mode)
    }

    /// Which heads' o_proj inputs differ from the unsharded layer's, when a check failed: every
    /// rank sends its heads' `attn ⊙ act(gate)` rows to rank 0 (all ranks must call this), which
    /// compares them head by head. Each head's relative error, on rank 0 (empty elsewhere).
    public static func headErrors(_ attention: MLAAttention, world: Communicator, tolerance: Float = tolerance,
                                  reference: () throws -> MLAAttention, x: Matrix, batch: Batch) throws -> [(head: Int, relative: Float)] {
        let mine = attention.gatedAttention                                           // [T, Hl·v]
        let (values, counts) = try world.allGather(varying: mine.storage)
        guard world.rank == 0 else { return [] }
        let whole = try reference()
        _ = try whole.forward(x, batch: batch, collectives: .local)
        let ref = whole.gatedAttention, v = attention.config.vHeadDim, hl = attention.localHeads, T = ref.rows
        var errors: [(Int, Float)] = [], offset = 0
        for (r, n) in counts.enumerated() where n > 0 {
            for j in 0..<hl {
                let h = r * hl + j
                var d: Float = 0, m: Float = 0
                for t in 0..<T {
                    for c in 0..<v {
                        let a = values[offset + t * hl * v + j * v + c], b = ref[t, h * v + c]
                        d = max(d, abs(a - b)); m = max(m, abs(b))
                    }
                }
                errors.append((h, m > 0 ? d / m : d))
            }
            offset += n
        }
        return errors
    }

    /// Whether rank 0 can afford the unsharded layer beside its own shard: its weights twice
    /// (the layer and its transposed load) within a quarter of this machine's memory.
    public static func fits(config: MLAConfig, physicalMemory: UInt64 = ProcessInfo.processInfo.physicalMemory) -> Bool {
        Double(ShardingPlan(config: config, tp: 1, gate: .column).bytesPerRank) * 2 < Double(physicalMemory) / 4
    }
}
