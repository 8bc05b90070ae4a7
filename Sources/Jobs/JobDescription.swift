import Foundation
import MLA
import Measure
import Report
import SafeTensors
import SwiftMPI
import TensorCore
import TensorParallel

/// One job as a value: the model, the reduction and the work. A parent writes it once
/// (`write(to:)`) and its child job reads it once (`mla-tp job FILE`), so every option a
/// command was given reaches the job it starts; `run` and `sweep-step` build the same value
/// from their flags and run it through the same code.
public struct JobDescription: Codable, Sendable, Equatable {
    /// What the job does: `mla-tp run`, `mla-tp sweep-step`, or one layout of `mla-tp invariance`.
    public enum Work: Codable, Sendable, Equatable {
        case run(RunSpec)
        case step(StepSpec)
        case invariance(InvarianceSpec)
    }
    public var model: ModelChoice
    public var reduction: ReductionChoice
    /// How the forward orders its reductions (only `default` so far).
    public var mode: ForwardMode
    public var work: Work

    public init(model: ModelChoice, reduction: ReductionChoice, mode: ForwardMode = .default, work: Work) {
        self.model = model
        self.reduction = reduction
        self.mode = mode
        self.work = work
    }

    /// Writes this description as JSON at `path`, atomically.
    public func write(to path: String) throws {
        try AtomicFile.write(Data(try Format.json(self).utf8), to: path)
    }

    /// The description a parent wrote at `path`.
    public static func load(_ path: String) throws -> JobDescription {
        try MeasureError.decode(JobDescription.self, path: path, what: "job description",
                                remedy: "pass a file that `mla-tp sweep` wrote into its --out directory's jobs/")
    }
}

/// How o_proj's partial sums are reduced (`--allreduce`, `--allreduce-dtype`).
public struct ReductionChoice: Codable, Sendable, Equatable {
    /// auto: a shared-memory window for small payloads on one host; mpi: always MPI.
    public enum Route: String, Codable, Sendable, CaseIterable { case auto, mpi }
    public var route: Route
    /// What the partial sums are reduced in (nil: the model's dtype).
    public var dtype: Precision?

    public init(route: Route = .auto, dtype: Precision? = nil) {
        self.route = route
        self.dtype = dtype
    }

    /// What the reduction runs in for a model held in `model`.
    public func reduction(dtype model: Precision) -> Precision { dtype ?? model }

    /// Collectives over `world` as chosen, for a model held in `model` run in `mode`: the invariant
    /// mode reduces its f32 partials along its fixed tree whatever the model's dtype.
    public func collectives(_ world: Communicator, dtype model: Precision, mode: ForwardMode) -> Collectives {
        collectives(world, dtype: mode == .invariant ? .f32 : model)
    }

    /// Collectives over `world` as chosen, for a model held in `model`.
    public func collectives(_ world: Communicator, dtype model: Precision) -> Collectives {
        let c = Collectives(world, reducePrecision: reduction(dtype: model))
        if route == .mpi { c.sharedMemoryLimit = 0 }
        return c
    }
}

/// `mla-tp run`'s own options (beside the model and the reduction).
public struct RunSpec: Codable, Sendable, Equatable {
    public var layer = 0
    /// `--input`: hidden states from a safetensors file instead of seeded ones.
    public var input: String?
    /// `--output`: where rank 0 writes `attn_output`.
    public var output: String?
    /// `--tokens` (one sequence) or `--seqs` (a batch); neither: 16 tokens.
    public var tokens: Int?
    public var seqs: [Int]?
    public var decodeSteps = 0
    public var prefillChunk: Int?
    public var decode: DecodePath = .absorbed
    public var dp = 1
    public var dcp = 1
    /// `--latent-proj`: how each TP group holds q_a_proj and kv_a_proj_with_mqa.
    public var latent: LatentProjection = .replicated
    /// `--pad-heads`: a tp that does not divide the heads pads them with zero heads.
    public var padHeads = false
    /// Compare with the unsharded forward (nil: when it fits).
    public var check: Bool?
    public var checkStages = false
    public var json = false
    /// Passes of the same work, the fastest reported (a layout sweep's timing; `run` makes one).
    public var passes = 1

    public init() {}

    /// The sequence lengths asked for (`seqs`, else one sequence of `tokens`).
    public var lengths: [Int] { seqs ?? [tokens ?? 16] }
    /// Served through the latent cache.
    public var serving: Bool { decodeSteps != 0 || prefillChunk != nil }
}

/// `mla-tp sweep-step`'s own options: timed forwards or decode steps, or the rate probe.
public struct StepSpec: Codable, Sendable, Equatable {
    public var tokens = 128
    /// Time decode steps after this many cached tokens instead of a prefill.
    public var context: Int?
    public var decode: DecodePath = .absorbed
    public var repeats = 5
    /// Measure the rates only, or first (then time the forward in the same job).
    public var probe = false
    public var probeFirst = false
    public var probeShape = RateProbe.Shape(m: 1024, n: 1024, k: 1024)
    public var probeAllReduceBytes = 4 << 20
    /// Also time the expanded attention kernel on one sequence of this many tokens (the model's
    /// dimensions, up to 16 heads); nil: not.
    public var probeAttentionTokens: Int?
    /// Also time the absorbed decode kernel over this many cached tokens (the model's local
    /// heads at the probe's rank count); nil: not.
    public var probeDecodeContext: Int?
    /// Where rank 0 writes the JSON result (nil: printed).
    public var out: String?

    public init() {}
}
