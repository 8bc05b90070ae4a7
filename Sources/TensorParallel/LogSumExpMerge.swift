import Foundation

/// Decode context parallelism's merge of partial attentions, split in two: `correct`, the
/// numeric step (no MPI, callable alone), and `Collectives.mergeByLogSumExp`, the collective
/// step that wraps it.
///
/// Why it is exact: for disjoint key sets K_k with scores S_k, `softmax(S)·V = Σ_k e^(lse_k − lse)
/// · softmax(S_k)·V_k`, where `lse_k = log Σ_{j∈K_k} e^(s_j)` and `lse = log Σ_k e^(lse_k)`.
public enum LogSumExpMerge {
    /// Scales this rank's partial outputs in place so that their sum over the ranks is the
    /// attention over every rank's keys: row r times `e^(lse_k[r] − lse[r])`, computed as
    /// `e^(lse_k[r] − m) / Σ_j e^(lse_j[r] − m)` with m the largest `lse_j[r]`, in f32. A row whose
    /// own log-sum-exp is −∞ (no key of this rank is visible to it) becomes 0 whatever it held,
    /// so it contributes nothing, even when every rank's is −∞.
    ///
    /// - `partials` `[n, width]`: this rank's `softmax · V` over its own keys, scaled in place.
    /// - `own` `[n]`: this rank's log-sum-exps.
    /// - `gathered` `[C, n]`: every rank's, rank-major (this rank's among them).
    public static func correct(_ partials: UnsafeMutableBufferPointer<Float>, width: Int,
                               logSumExps own: UnsafeBufferPointer<Float>, gathered: UnsafeBufferPointer<Float>) {
        let n = own.count
        precondition(partials.count == n * width && (n == 0 || gathered.count % n == 0),
                     "log-sum-exp merge: \(partials.count) partial floats, \(n) rows of \(width), \(gathered.count) gathered log-sum-exps")
        let ranks = n == 0 ? 0 : gathered.count / n
        for r in 0..<n {
            let row = UnsafeMutableBufferPointer(rebasing: partials[r * width ..< (r + 1) * width])   // [width]
            guard own[r] != -.infinity else { row.update(repeating: 0); continue }
            var m = -Float.infinity
            for k in 0..<ranks { m = max(m, gathered[k * n + r]) }
            var sum: Float = 0
            for k in 0..<ranks { sum += Foundation.exp(gathered[k * n + r] - m) }
            let factor = Foundation.exp(own[r] - m) / sum
            for j in 0..<width { row[j] *= factor }
        }
    }
}

extension Collectives {
    /// Decode context parallelism's merge as one collective step (vLLM's `cp_lse_ag_out_rs`):
    /// all-gather the log-sum-exps, correct each partial output by `e^(lse_k − lse)`
    /// (`LogSumExpMerge.correct`), reduce-scatter the sum.
    ///
    /// Partition over the C ranks of the group: `partials` `[C·n, width]` and `logSumExps`
    /// `[C·n]` hold rows `[rank b][n]` — block b is rank b's queries (its heads), attended over
    /// this rank's keys. Rank b receives block b summed over every rank's keys in `merged`
    /// `[n, width]`. `gathered` `[C, C·n]` receives every rank's log-sum-exps.
    ///
    /// Collectives: one `MPI_Allgather` of the log-sum-exps (`C·n` floats per rank), one
    /// `MPI_Reduce_scatter_block` of the corrected partials (`C·n·width` floats per rank). On
    /// one rank (no communicator) both are copies and the correction scales by 1.
    public func mergeByLogSumExp(_ partials: UnsafeMutableBufferPointer<Float>, width: Int, logSumExps: UnsafeBufferPointer<Float>,
                                 gathered: UnsafeMutableBufferPointer<Float>, into merged: UnsafeMutableBufferPointer<Float>) throws {
        let c = size, rows = logSumExps.count
        precondition(rows % c == 0 && gathered.count == c * rows && merged.count == rows / c * width,
                     "log-sum-exp merge over \(c) ranks: \(rows) rows, \(gathered.count) gathered, \(merged.count) merged floats of \(width)")
        try allGather(logSumExps, into: gathered)                                         // [C, C·n]
        LogSumExpMerge.correct(partials, width: width, logSumExps: logSumExps, gathered: UnsafeBufferPointer(gathered))
        try reduceScatter(UnsafeBufferPointer(partials), into: merged)                     // [n, width]
    }
}
