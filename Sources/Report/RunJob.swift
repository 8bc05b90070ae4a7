import Foundation
import MLA
import Measure
import SafeTensors
import SwiftMPI
import TensorCore
import TensorParallel

/// `run`'s work on every rank: one attention layer under TP (a plain forward, or served
/// through the latent cache), the check against the unsharded forward, and rank 0's report.
public struct RunJob {
    public var config: MLAConfig
    /// The model's short name for reports (a preset's name or the checkpoint path).
    public var model: String
    public var layer: Int
    public var gate: GateLayout
    public var x: Matrix                 // [T, hidden]
    public var batch: Batch
    /// Serve through the latent cache on this schedule (nil: one plain forward).
    public var schedule: ServingSchedule?
    public var decode: DecodePath
    /// Compare with the unsharded forward on rank 0 (nil: when it fits, `TPCheck.fits`).
    public var check: Bool?
    public var checkEveryStage: Bool
    /// Called mid-forward on this rank (the failure tests' fault switch).
    public var faultHook: (() throws -> Void)?

    public init(config: MLAConfig, model: String, layer: Int, gate: GateLayout, x: Matrix, batch: Batch,
                schedule: ServingSchedule?, decode: DecodePath, check: Bool?, checkEveryStage: Bool,
                faultHook: (() throws -> Void)? = nil) {
        self.config = config
        self.model = model
        self.layer = layer
        self.gate = gate
        self.x = x
        self.batch = batch
        self.schedule = schedule
        self.decode = decode
        self.check = check
        self.checkEveryStage = checkEveryStage
        self.faultHook = faultHook
    }

    public struct Outcome {
        /// `[T, hidden]`, the same on every rank.
        public var output: Matrix
        /// On rank 0.
        public var report: RunReport?
        public var verdict: TPCheck.Verdict
    }

    /// Builds this rank's shard from `source()` and runs; `source()` is called again on rank 0
    /// for the unsharded reference.
    public func execute(world: Communicator, collectives: Collectives, source: () throws -> WeightSource) throws -> Outcome {
        let weights = try source()
        let attention = try MLAAttention(config: config, layer: layer, shard: Shard(rank: world.rank, size: world.size),
                                         gateLayout: gate, source: weights)
        attention.checkEveryStage = checkEveryStage
        attention.faultHook = faultHook
        let out = try schedule.map { try attention.serve(x, batch: batch, schedule: $0, decode: decode, collectives: collectives) }
            ?? attention.forward(x, batch: batch, collectives: collectives)

        let facts = try world.allGather(value: RankFacts(rank: world.rank, bytesReadFromFiles: (weights as? CheckpointWeights)?.bytesRead ?? 0,
                                                  anonymousMemory: ProcessMemory.current().anonymousBytes,
                                                  weightBytes: attention.weightBytes))
        let verdict = try TPCheck.verify(out, world: world, enabled: check ?? TPCheck.fits(config: config)) {
            try TPCheck.unshardedForward(config: config, layer: layer, source: try source(), x: x, batch: batch, checkEveryStage: checkEveryStage)
        }
        var report: RunReport?
        if world.rank == 0 {
            var r = RunReport(config: config, model: model, layer: layer, tp: world.size, gate: gate, batch: batch,
                              counters: attention.counters, collectives: collectives, facts: facts, check: verdict.result)
            if let schedule {
                let perToken = KVCache.bytesPerToken(config: config)
                r.serving = .init(decodeSteps: schedule.decodeSteps, prefillChunk: schedule.prefillChunk, decode: decode, steps: schedule.steps.count,
                                  prefillTokens: schedule.prefillTokens, decodeTokens: schedule.decodeTokens,
                                  shorterThanDecodeSteps: schedule.shorterThanDecodeSteps.map { batch.tokens(of: $0).count },
                                  cacheBytesPerToken: perToken, cacheBytesPerRank: perToken * batch.tokenCount)
            }
            report = r
        }
        return Outcome(output: out, report: report, verdict: verdict)
    }

    /// Writes `attn_output [T, hidden]` F32 with metadata (tp, gate, layer, config hash), atomically.
    public static func writeOutput(_ out: Matrix, to path: String, config: MLAConfig, tp: Int, gate: GateLayout, layer: Int) throws {
        var writer = SafeTensorsWriter(metadata: [
            "format": "pt", "producer": "mla-tp", "tp": "\(tp)", "gate": gate.rawValue,
            "layer": "\(layer)", "config_hash": try config.hash(),
        ])
        try writer.add("attn_output", floats: out.storage, shape: [out.rows, out.cols])
        try writer.write(to: path)
    }
}
