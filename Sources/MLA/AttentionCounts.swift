import TensorCore

/// What the attention kernels issue and how they tile their work, in closed form from their
/// shapes: the count the forward's counters record (`AttentionKernel.flops`) and the facts the
/// planner (the `Planner` target, above this one) builds its FLOP model and size budget on. The
/// runtime never asks the planner; the planner reads these.
public enum AttentionCounts {
    /// Query rows per block of the expanded kernel (a block scores up to its last query's keys).
    public static var queryBlockRows: Int { AttentionKernel.blockRows }

    /// Rows (heads × queries) the absorbed kernel stacks into one score GEMM.
    public static var absorbedGroupRows: Int { AbsorbedKernel.groupRows }

    /// GEMM FLOPs of the expanded kernel (`AttentionKernel.run`) for `heads` heads of head dims
    /// `dq` (nope + rope) and `v`, nq queries over nk keys (the new queries are the last nq of the
    /// nk keys): queries in blocks of `queryBlockRows`, block i's `rows` queries scoring the
    /// `nk − nq + i0 + rows` keys its last query sees, `2·rows·keys·(dq + v)` per head. In closed
    /// form, so that any nq costs the same few checked operations.
    public static func expandedFlops(heads: Int, dq: Int, v: Int, nq: Int, nk: Int) throws(CountOverflow) -> Int {
        guard nq > 0 else { return 0 }
        let what = "attention FLOPs for \(nq) queries over \(nk) keys"
        let b = queryBlockRows, offset = nk - nq, full = nq / b, rest = nq % b
        // Σ over full blocks i of b·(offset + (i+1)·b) = b·(full·offset + b·full·(full+1)/2).
        let triangle = full % 2 == 0 ? try Checked.product(full / 2, full + 1, what: what)
                                     : try Checked.product(full, (full + 1) / 2, what: what)
        let fullBlocks = try Checked.product(b, Checked.sum(Checked.product(full, offset, what: what),
                                                            Checked.product(b, triangle, what: what), what: what), what: what)
        let lastBlock = try Checked.product(rest, offset + nq, what: what)
        let rowKeys = try Checked.sum(fullBlocks, lastBlock, what: what)
        return try Checked.product(heads, 2, rowKeys, dq + v, what: what)
    }
}
