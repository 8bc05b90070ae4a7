import TensorCore

/// How the gate `[H·v, hidden]` is laid out across ranks (`--gate`).
public enum GateLayout: String, CaseIterable, Sendable, Codable {
    /// The fix: column-parallel with the heads. Rank r holds the gate rows of its own heads
    /// (`[H/tp·v, hidden]`) and its slice of the bias; its output matches the rank's attention output.
    case column
    /// FastDeploy PR #7404 as merged: a ReplicatedLinear. Every rank holds the whole gate and
    /// produces `[T, H·v]`, which cannot multiply the rank's `[T, H/tp·v]` attention output when tp > 1.
    case replicated
    /// The review's other fix: the whole gate on every rank, output sliced to the rank's heads.
    /// Correct, but every rank pays tp× the gate's bytes and FLOPs.
    case replicatedSliced = "replicated-sliced"
    /// A gate packed into the q projection, split by heads as if its rows were stored per head
    /// `[q_h | g_h]` whatever `gated_attn_packing` says: right when they are, silently wrong for a
    /// checkpoint stored `[all q | all g]`.
    case packedAsInterleaved = "packed-as-interleaved"
    /// The same, split as if stored `[all q | all g]`: silently wrong for a per-head checkpoint.
    case packedAsConcatenated = "packed-as-concatenated"

    /// The layouts of a separate gate projection (the fix, FastDeploy's merged one, the review's other fix).
    public static let separate: [GateLayout] = [.column, .replicated, .replicatedSliced]
    /// The splits of a gate packed into the q projection: by the config's packing, or by each assumed one.
    public static let packed: [GateLayout] = [.column, .packedAsInterleaved, .packedAsConcatenated]

    /// The layouts that apply to `config`'s gate.
    public static func applicable(to config: MLAConfig) -> [GateLayout] {
        config.useGatedAttn && !config.hasSeparateGate ? packed : separate
    }

    /// The packing a layer of this layout assumes when it splits a packed q projection
    /// (`column`: the config's own, the fix).
    public func assumedPacking(stored: GateForm.Packing) -> GateForm.Packing {
        switch self {
        case .packedAsInterleaved: return .interleaved
        case .packedAsConcatenated: return .concatenated
        default: return stored
        }
    }
}

/// The merged FastDeploy gate under tp > 1: the gate's output and the rank's attention
/// output have different widths. Raised before the multiply, so before any collective.
public struct GateMismatchError: Error, Equatable, CustomStringConvertible {
    public let tokens: Int
    public let heads: Int
    public let vHeadDim: Int
    public let tp: Int
    public let rank: Int
    /// Gate values per head: v (element-wise) or 1 (head-wise).
    public var perHead: Int

    public init(tokens: Int, heads: Int, vHeadDim: Int, tp: Int, rank: Int, perHead: Int? = nil) {
        (self.tokens, self.heads, self.vHeadDim, self.tp, self.rank) = (tokens, heads, vHeadDim, tp, rank)
        self.perHead = perHead ?? vHeadDim
    }

    public var description: String {
        let local = heads / tp
        let first = rank * local
        return "gate output [\(tokens), \(heads * perHead)] (all \(heads) heads × \(perHead)) does not match "
            + "rank \(rank)'s attention output [\(tokens), \(local * vHeadDim)] (heads \(first)–\(first + local - 1) × \(vHeadDim)) "
            + "under tp=\(tp): the replicated gate (FastDeploy PR #7404 as merged) only works at tp=1 — "
            + "use --gate column (the fix: shard the gate with the heads) or --gate replicated-sliced"
    }
}
