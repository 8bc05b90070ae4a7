import ExitClass
import MLA
import TensorCore

/// `mla-tp invariance`'s document: every configuration (a layout, a batch arrangement, a
/// chunking) against the first, sequence by sequence (by id, wherever the sequence sat):
/// identical, or how many output elements differ and the first stage whose hash differs.
public struct InvarianceReport: Codable, Sendable, Equatable {
    public struct Configuration: Codable, Sendable, Hashable, CustomStringConvertible {
        public var layout: String
        public var arrangement: BatchArrangement
        public var chunking: Chunking
        public init(layout: String, arrangement: BatchArrangement, chunking: Chunking) {
            self.layout = layout
            self.arrangement = arrangement
            self.chunking = chunking
        }
        public var description: String { "\(layout) / \(arrangement.rawValue) / \(chunking)" }
    }
    /// One sequence against the baseline's run of it.
    public struct SequenceResult: Codable, Sendable, Equatable {
        public var id: Int
        /// Output elements whose bits differ, of `elements`.
        public var differing: Int
        public var elements: Int
        /// The first stage, in forward order, whose hash differs (nil: none).
        public var firstStage: HashedStage?
    }
    public struct Cell: Codable, Sendable, Equatable {
        public var configuration: Configuration
        public var sequences: [SequenceResult]
        public var differing: Int { sequences.reduce(0) { $0 + $1.differing } }
        public var elements: Int { sequences.reduce(0) { $0 + $1.elements } }
        /// The earliest first-divergent stage of any sequence.
        public var firstStage: HashedStage? { sequences.compactMap(\.firstStage).min() }
        public var identical: Bool { firstStage == nil && differing == 0 }
    }

    public var model: String
    public var dtype: Precision
    public var mode: ForwardMode
    public var decode: DecodePath
    /// Tokens of each sequence, by id.
    public var lengths: [Int]
    public var baseline: Configuration
    /// Every configuration, the baseline first: layouts in the order given, then arrangements, then chunkings.
    public var cells: [Cell]

    /// Configurations that differ from the baseline.
    public var differingCells: [Cell] { cells.filter { !$0.identical } }

    /// Compares every pass of `traces` (one per layout, the first pass of the first the
    /// baseline) with the baseline, sequence by sequence.
    public init(model: String, dtype: Precision, decode: DecodePath, lengths: [Int], traces: [InvarianceTrace]) throws(InvarianceReportError) {
        guard let first = traces.first, let base = first.passes.first else { throw .empty }
        self.model = model
        self.dtype = dtype
        self.mode = first.mode
        self.decode = decode
        self.lengths = lengths
        baseline = Configuration(layout: first.layout, arrangement: base.pass.arrangement, chunking: base.pass.chunking)
        var cells: [Cell] = []
        for trace in traces {
            for result in trace.passes {
                let configuration = Configuration(layout: trace.layout, arrangement: result.pass.arrangement, chunking: result.pass.chunking)
                var results: [SequenceResult] = []
                for b in base.sequences {
                    guard let s = result.sequences.first(where: { $0.id == b.id }), s.output.count == b.output.count else {
                        throw .missingSequence(id: b.id, configuration: configuration.description)
                    }
                    let differing = zip(s.output, b.output).filter { $0 != $1 }.count
                    let stage = HashedStage.allCases.first { s.hash(of: $0) != b.hash(of: $0) }
                    results.append(SequenceResult(id: b.id, differing: differing, elements: b.output.count, firstStage: stage))
                }
                cells.append(Cell(configuration: configuration, sequences: results))
            }
        }
        self.cells = cells
    }

    /// The exit: a numeric failure when any configuration differs from the baseline.
    public var drift: InvarianceDrift? {
        let differing = differingCells
        guard !differing.isEmpty else { return nil }
        return InvarianceDrift(differing: differing.count, configurations: cells.count, baseline: baseline.description,
                               earliest: differing.compactMap(\.firstStage).min() ?? .output, mode: mode)
    }
}

/// Traces that cannot be compared (a child job's output that lacks a sequence): a bug.
public enum InvarianceReportError: Error, Equatable, CustomStringConvertible {
    case empty
    case missingSequence(id: Int, configuration: String)

    public var description: String {
        switch self {
        case .empty: return "no invariance trace to compare — pass at least one layout, batch arrangement and chunking"
        case let .missingSequence(id, configuration):
            return "the trace of \(configuration) lacks sequence #\(id) or its whole output — rerun that layout's job (OUT/jobs/) and report it"
        }
    }
}

extension InvarianceReportError: ExitClassified {
    public var failureClass: FailureClass { self == .empty ? .usage : .internal }
}

/// Some configuration's bits differ from the baseline's: a numeric result (exit 5), after the matrix is printed.
public struct InvarianceDrift: Error, Equatable, CustomStringConvertible, ExitClassified {
    public var differing: Int
    public var configurations: Int
    public var baseline: String
    public var earliest: HashedStage
    /// The mode the configurations ran in: a drift is expected of the default one, a bug in the invariant one.
    public var mode: ForwardMode = .default

    public var failureClass: FailureClass { .numeric }

    public var description: String {
        "\(differing) of \(configurations) configurations differ from \(baseline) (the earliest divergence at stage \(earliest.rawValue)) — "
            + (mode == .invariant
                ? "the invariant mode promises the same bits in every one: this is a bug — report it with the matrix above and invariance.json (--out)"
                : "the default forward's bits depend on the layout, the batch and the chunking; see the matrix above and docs/invariance.md (--invariant removes that)")
    }
}
