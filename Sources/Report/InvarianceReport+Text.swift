import ExitClass
import MLA

extension InvarianceReport {
    /// One cell: `baseline`, `identical`, or `N/M @ stage` (N of M output elements differ, the
    /// first stage whose hash differs).
    func label(_ cell: Cell) -> String {
        if cell.configuration == baseline { return "baseline" }
        if cell.identical { return "identical" }
        return "\(cell.differing)/\(cell.elements) @ \((cell.firstStage ?? .output).rawValue)"
    }

    /// The matrix: a row per layout and batch arrangement, a column per chunking.
    public func text() -> String {
        let tokens = lengths.map(String.init).joined(separator: ", ")
        var s = "mla-tp invariance: model \(OutsideText.escaped(model)), \(dtype.rawValue), \(mode.rawValue) mode, "
        s += "\(lengths.count) sequence\(lengths.count == 1 ? "" : "s") of \(tokens) tokens, decode \(decode.rawValue)\n"
        s += "each configuration against \(baseline), sequence by sequence; N/M @ S: N of M output elements differ, "
        s += "the first stage whose hash differs is S (\(HashedStage.allCases.map(\.rawValue).joined(separator: ", ")))\n\n"
        var chunkings: [Chunking] = [], rows: [(String, BatchArrangement)] = []
        for c in cells {
            if !chunkings.contains(c.configuration.chunking) { chunkings.append(c.configuration.chunking) }
            let row = (c.configuration.layout, c.configuration.arrangement)
            if !rows.contains(where: { $0 == row }) { rows.append(row) }
        }
        s += Format.table(["layout", "batch"] + chunkings.map(\.description), rows.map { layout, arrangement in
            [layout, arrangement.rawValue] + chunkings.map { chunking in
                cells.first { $0.configuration == Configuration(layout: layout, arrangement: arrangement, chunking: chunking) }.map(label) ?? "—"
            }
        }) + "\n\n"
        let differing = differingCells.count
        s += differing == 0 ? "identical: all \(cells.count) configurations give the baseline's bits\n"
            : "\(differing) of \(cells.count) configurations differ from the baseline\n"
        return s
    }
}
