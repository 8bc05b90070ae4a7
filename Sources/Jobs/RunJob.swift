import Foundation
import MLA
import Measure
import Report
import SafeTensors
import SwiftMPI
import TensorCore
import TensorParallel

/// `run`'s work on every rank: one attention layer under the job's layout (tensor parallel,
/// data-parallel groups, decode context parallelism), as a plain forward or served through the
/// latent cache, the check against the unsharded forward, and rank 0's report.
public struct RunJob {
    public var config: MLAConfig
    /// The model's short name for reports (a preset's name or the checkpoint path).
    public var model: String
    public var layer: Int
    public var gate: GateLayout
    public var x: Matrix                 // [T, hidden], the whole batch
    public var batch: Batch
    /// How the ranks are arranged (dp · tp = the job's ranks).
    public var layout: ParallelLayout
    /// Serve through the latent cache (nil: one plain forward; DCP always serves).
    public var serving: Serving?
    public var decode: DecodePath
    /// Compare with the unsharded forward on rank 0 (nil: when it fits, `TPCheck.fits`).
    public var check: Bool?
    public var checkEveryStage: Bool
    /// How the weights are held (`--dtype`, `--quantization`), and so what the activations are
    /// stored in; the reduction's own precision is the collectives' (`--allreduce-dtype`).
    public var storage: any WeightStorage.Type
    public var precision: Precision { storage.activations }
    /// What the latent cache holds its tokens in (`--kv-cache-dtype`, resolved).
    public var cacheDType: KVCacheDType
    /// How the forward orders its reductions (`--invariant`).
    public var mode: ForwardMode
    /// Pad the heads to a multiple of tp with zero heads when tp does not divide them (`--pad-heads`).
    public var padHeads = false
    /// Called mid-forward on this rank (the failure tests' fault switch).
    public var faultHook: (() throws -> Void)?
    /// When set, the id of each of the batch's sequences: every stage is hashed per sequence
    /// under its id (`StageHashes`, in the outcome). nil: nothing is hashed.
    public var hashSequences: [Int]?
    /// Passes of the same work (a layout sweep's timing): each starts from an empty cache, the
    /// report gives the fastest pass's time and stages and the last pass's traffic.
    public var passes = 1

    /// `--decode-steps` and `--prefill-chunk`: each DP group builds its own schedule from them.
    public struct Serving: Sendable {
        public var decodeSteps: Int
        public var prefillChunk: Int?
        public init(decodeSteps: Int, prefillChunk: Int?) {
            self.decodeSteps = decodeSteps
            self.prefillChunk = prefillChunk
        }
    }

    public init(config: MLAConfig, model: String, layer: Int, gate: GateLayout, x: Matrix, batch: Batch, layout: ParallelLayout,
                serving: Serving?, decode: DecodePath, check: Bool?, checkEveryStage: Bool, storage: any WeightStorage.Type = F32Storage.self,
                cacheDType: KVCacheDType? = nil, mode: ForwardMode = .default, faultHook: (() throws -> Void)? = nil) {
        self.config = config
        self.model = model
        self.layer = layer
        self.gate = gate
        self.x = x
        self.batch = batch
        self.layout = layout
        self.serving = serving
        self.decode = decode
        self.check = check
        self.checkEveryStage = checkEveryStage
        self.storage = storage
        self.cacheDType = cacheDType ?? KVCacheDType(activations: storage.activations)
        self.mode = mode
        self.faultHook = faultHook
    }

    public struct Outcome {
        /// `[T, hidden]` on rank 0 (the whole batch, in batch order); this rank's group's rows elsewhere.
        public var output: Matrix
        /// On rank 0.
        public var report: RunReport?
        public var verdict: TPCheck.Verdict
        /// When the check failed: each head's relative error in o_proj's input (on rank 0; plain
        /// forwards without data-parallel groups).
        public var headErrors: [RunReport.HeadError]
        /// This rank's stage hashes, when `hashSequences` asked for them.
        public var stageHashes: [StageHashes.Entry] = []
    }

    /// Builds this rank's shard from `source()` and runs its group's sequences; `source()` is
    /// called again on rank 0 for the unsharded reference. `collectives` makes the collectives
    /// of a communicator (the `--allreduce` choice).
    public func execute(world: Communicator, collectives: (Communicator) -> Collectives,
                        source: () throws -> WeightSource) throws -> Outcome {
        let groups = try LayoutGroups(layout, world: world)
        let assignment = layout.assign(lengths: (0..<batch.sequenceCount).map { batch.tokens(of: $0).count })
        let (xs, mine) = try groups.slice(x, batch, sequences: assignment[groups.position.dpGroup])
        let tp = collectives(groups.tp)
        let weights = try source()
        let attention = try MLAAttention(config: config, layer: layer, shard: layout.shard(of: world.rank), gateLayout: gate, source: weights,
                                         storage: storage, mode: mode, latent: layout.latent,
                                         padHeads: padHeads)
        attention.checkEveryStage = checkEveryStage
        attention.faultHook = faultHook
        if let ids = hashSequences { attention.stageHashes = StageHashes(sequenceIDs: assignment[groups.position.dpGroup].map { ids[$0] }) }
        let dcp = groups.dcp.map { ContextParallelGroup(Collectives($0), share: layout.tokenShare(of: world.rank)) }
        // A plain forward under DCP is one prefill through the split cache; so is one in the
        // invariant mode through a cache that rounds (its keys are then what any cached step reads).
        let throughCache = layout.dcp > 1 || (mode == .invariant && !cacheDType.isExact(for: precision))
        let served = serving ?? (throughCache ? Serving(decodeSteps: 0, prefillChunk: nil) : nil)
        let schedule = try served.map { try ServingSchedule(batch: mine, decodeSteps: $0.decodeSteps, prefillChunk: $0.prefillChunk) }
        var groupOut = Matrix(rows: 0, cols: 0), fastest: ForwardCounters?, passSeconds: [Double] = []
        for pass in 0..<max(passes, 1) {
            if pass > 0 { tp.resetCounters(); dcp?.collectives.resetCounters() }
            groupOut = try schedule.map { try attention.serve(xs, batch: mine, schedule: $0, decode: decode, collectives: tp, dcp: dcp,
                                                              cacheDType: cacheDType) }
                ?? attention.forward(xs, batch: mine, collectives: tp)
            if fastest.map({ attention.counters.seconds < $0.seconds }) ?? true { fastest = attention.counters }
            passSeconds.append(attention.counters.seconds)
        }
        let out = try groups.gather(groupOut, assignment: assignment, batch: batch)

        let facts = try world.allGather(value: RankFacts(
            rank: world.rank, bytesReadFromFiles: (weights as? CheckpointWeights)?.bytesRead ?? 0,
            anonymousMemory: ProcessMemory.current().anonymousBytes, weightBytes: attention.weightBytes,
            position: groups.position, cachedTokens: attention.lastCache?.localLengths.reduce(0, +), cacheBytes: attention.lastCache?.bytes,
            communicators: [CommunicatorTraffic(tp)] + (dcp.map { [CommunicatorTraffic($0.collectives)] } ?? [])))
        let placement = try world.placement()
        // Through a lossy cache the check is one comparison in the run's precision: an f32 reference
        // would round other latents (f32, not bf16) into the cache, a difference of the cache's own size.
        let enabled = check ?? TPCheck.fits(config: config)
        let verdict = mode == .invariant
            ? try TPCheck.verifyBits(out, world: world, enabled: enabled) { try reference(precision: precision, served: served, source: source) }
            : servedReference(served)
            ? try TPCheck.verify(out, world: world, enabled: enabled, tolerance: TPCheck.tolerance(for: precision)) {
                try reference(precision: precision, served: served, source: source)
            }
            : try TPCheck.verify(out, world: world, enabled: enabled, precision: precision) { try reference(precision: $0, served: served, source: source) }
        var heads: [RunReport.HeadError] = []
        if !verdict.pass && schedule == nil && layout.dp == 1 {
            heads = try TPCheck.headErrors(attention, world: world, tolerance: TPCheck.tolerance(for: attention.precision), reference: {
                try TPCheck.unshardedLayer(config: config, layer: layer, source: try source(), x: x, batch: batch, storage: storage, mode: mode)
            }, x: x, batch: batch).map { RunReport.HeadError(head: $0.head, relative: $0.relative) }
        }
        var report: RunReport?
        if world.rank == 0 {
            var r = RunReport(config: config, model: model, layer: layer, layout: layout, gate: gate, batch: batch,
                              counters: fastest ?? attention.counters, collectives: tp, facts: facts, hosts: placement.hosts, nodes: placement.nodes,
                              placement: placement.description, check: verdict.result,
                              precision: attention.precision, quantization: attention.storage.quantization)
            r.assignment = layout.dp > 1 ? assignment : nil
            r.headErrors = heads.isEmpty ? nil : heads
            r.precisionCheck = verdict.precision
            r.mode = mode == .invariant ? .invariant : nil
            (r.passes, r.passSeconds) = passSeconds.count > 1 ? (passSeconds.count, passSeconds) : (nil, nil)
            if let schedule {
                r.serving = .init(decodeSteps: schedule.decodeSteps, prefillChunk: schedule.prefillChunk, decode: decode, steps: schedule.steps.count,
                                  prefillTokens: schedule.prefillTokens, decodeTokens: schedule.decodeTokens,
                                  shorterThanDecodeSteps: schedule.shorterThanDecodeSteps.map { batch.tokens(of: $0).count },
                                  cacheDType: cacheDType, cacheBytesPerToken: KVCache.bytesPerToken(config: config, dtype: cacheDType),
                                  cacheBytesPerRank: facts.map { $0.cacheBytes ?? 0 }.max() ?? 0,
                                  checkedAgainstServed: servedReference(served))
                if verdict.result != nil && servedReference(served) {           // what the cache's rounding costs the output
                    r.serving?.againstPlainForward = try Comparison(out, reference: try reference(precision: precision, served: nil, source: source))
                }
            }
            report = r
        }
        return Outcome(output: out, report: report, verdict: verdict, headErrors: heads, stageHashes: attention.stageHashes?.entries ?? [])
    }

    /// Whether the check's reference serves the batch through the same cache: when the cache does
    /// not give back the values appended (fp8; bf16 holding f32 activations), the plain forward
    /// would differ from every served run by the cache's rounding, and the check is about the
    /// sharding. Otherwise the reference is the plain forward (in the invariant mode, the plain
    /// invariant forward: a served run must give its bits).
    func servedReference(_ served: Serving?) -> Bool { served != nil && !cacheDType.isExact(for: precision) }

    /// Rank 0's unsharded reference in `p`: the plain forward, or the whole batch served as
    /// `served` says through a cache of `cacheDType` (`servedReference`).
    func reference(precision p: Precision, served: Serving?, source: () throws -> WeightSource) throws -> Matrix {
        guard let served, servedReference(served) else {
            return try TPCheck.reference(p, run: storage, config: config, layer: layer, source: try source(), x: x, batch: batch,
                                         checkEveryStage: checkEveryStage, mode: mode)
        }
        let (held, values) = TPCheck.referenceStorage(p, run: storage, source: try source())
        let whole = try TPCheck.unshardedLayer(config: config, layer: layer, source: values, x: x, batch: batch, storage: held, mode: mode)
        whole.checkEveryStage = checkEveryStage
        let schedule = try ServingSchedule(batch: batch, decodeSteps: served.decodeSteps, prefillChunk: served.prefillChunk)
        return try whole.serve(x, batch: batch, schedule: schedule, decode: decode, collectives: .local, cacheDType: cacheDType)
    }

    /// Writes `attn_output [T, hidden]` F32 with metadata (tp, gate, layer, config hash), atomically.
    public static func writeOutput(_ out: Matrix, to path: String, config: MLAConfig, layout: ParallelLayout, gate: GateLayout, layer: Int) throws {
        var writer = SafeTensorsWriter(metadata: [
            "format": "pt", "producer": "mla-tp", "tp": "\(layout.tp)", "layout": layout.description, "gate": gate.rawValue,
            "layer": "\(layer)", "config_hash": try config.hash(),
        ])
        try writer.add("attn_output", floats: out.storage, shape: [out.rows, out.cols])
        try writer.write(to: path)
    }

    /// What a failed check means, in one line: which heads differ, and the likely cause.
    public static func failure(_ outcome: Outcome, config: MLAConfig, gate: GateLayout, precision: Precision = .f32) -> CheckFailure {
        let tolerance = TPCheck.tolerance(for: precision)
        if outcome.report?.mode == .invariant {
            let p = outcome.report?.precisionCheck
            return CheckFailure(message: "the invariant mode's output is not bit-identical to the unsharded invariant forward"
                + (p.map { " (\($0.differingElements) of \($0.elements) elements differ)" } ?? "")
                + " — the invariant mode promises the same bits at every layout: this is a bug; report it with the command and --json")
        }
        let heads = outcome.report?.differingHeads(tolerance: tolerance) ?? ""
        var what = "the TP result differs from the unsharded forward by more than \(tolerance) relative"
        if precision == .bf16 { what += " (in bf16 or against f32)" }
        if !heads.isEmpty { what += "; o_proj's input differs in heads \(heads)" }
        let packed = config.useGatedAttn && (try? config.gateForm())?.placement == .packed
        let hint = packed
            ? "the q/gate packing order is the likely cause: the packed q projection is split as \(gate.assumedPacking(stored: (try? config.gateForm())?.packing ?? .interleaved).rawValue) but stored \(config.gatedAttnPacking) (gated_attn_packing) — split it the way it is stored (--gate column)"
            : "this is a sharding bug; rerun with --check-stages and report it"
        return CheckFailure(message: "\(what) — \(hint)")
    }
}
