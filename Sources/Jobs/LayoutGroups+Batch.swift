import MLA
import TensorCore
import TensorParallel

/// Moving a batch's rows between a layout's data-parallel groups.
extension LayoutGroups {
    /// This group's sequences of the batch (in batch order) and their hidden states.
    func slice(_ x: Matrix, _ batch: Batch, sequences: [Int]) throws -> (Matrix, Batch) {
        guard layout.dp > 1 else { return (x, batch) }
        let lengths = sequences.map { batch.tokens(of: $0).count }
        var xs = Matrix(rows: lengths.reduce(0, +), cols: x.cols)                // [T_group, hidden]
        var positions: [Int] = [], row = 0
        for s in sequences {
            let r = batch.tokens(of: s)
            xs.storage.replaceSubrange(row * x.cols ..< (row + r.count) * x.cols, with: x.storage[r.lowerBound * x.cols ..< r.upperBound * x.cols])
            positions += batch.positions[r]
            row += r.count
        }
        var cu = [0]
        for n in lengths { cu.append(cu.last! + n) }
        return (xs, try Batch(cuSeqlens: cu, positions: positions))
    }

    /// The whole batch's output on rank 0, rows back in batch order: the first rank of each
    /// group sends its group's rows (an all-gather with varying counts over the world; every rank
    /// enters it, empty groups with nothing). Other ranks keep their group's rows.
    func gather(_ out: Matrix, assignment: [[Int]], batch: Batch) throws -> Matrix {
        guard layout.dp > 1 else { return out }
        let sends = position.tpRank == 0 ? out.storage : []
        let (values, counts) = try world.allGather(varying: sends)
        guard world.rank == 0 else { return out }
        var full = Matrix(rows: batch.tokenCount, cols: out.cols)                   // [T, hidden]
        var offset = 0
        for (r, n) in counts.enumerated() where n > 0 {
            var at = offset
            for s in assignment[layout.position(of: r).dpGroup] {
                let rows = batch.tokens(of: s)
                full.storage.replaceSubrange(rows.lowerBound * out.cols ..< rows.upperBound * out.cols,
                                             with: values[at ..< at + rows.count * out.cols])
                at += rows.count * out.cols
            }
            offset += n
        }
        return full
    }
}
