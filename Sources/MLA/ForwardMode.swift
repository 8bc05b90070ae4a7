/// How a forward orders its reductions. `default`: as each kernel and collective chooses —
/// fast, and the bits of a sequence's output may change with the layout (tp, dcp, dp), with
/// the batch around it and with how its tokens arrive (one prefill, chunks, decode steps);
/// `mla-tp invariance` shows where. A mode whose reductions run in fixed block trees, the same
/// bits under every layout, would be a second case, given to every job the same way.
public enum ForwardMode: String, Codable, Sendable, CaseIterable {
    case `default`
}
