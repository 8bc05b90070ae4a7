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
}

/// The merged FastDeploy gate under tp > 1: the gate's output and the rank's attention
/// output have different widths. Raised before the multiply, so before any collective.
public struct GateMismatchError: Error, Equatable, CustomStringConvertible {
    public let tokens: Int
    public let heads: Int
    public let vHeadDim: Int
    public let tp: Int
    public let rank: Int

    public var description: String {
        let local = heads / tp
        let first = rank * local
        return "gate output [\(tokens), \(heads * vHeadDim)] (all \(heads) heads × \(vHeadDim)) does not match "
            + "rank \(rank)'s attention output [\(tokens), \(local * vHeadDim)] (heads \(first)–\(first + local - 1) × \(vHeadDim)) "
            + "under tp=\(tp): the replicated gate (FastDeploy PR #7404 as merged) only works at tp=1 — "
            + "use --gate column (the fix: shard the gate with the heads) or --gate replicated-sliced"
    }
}
