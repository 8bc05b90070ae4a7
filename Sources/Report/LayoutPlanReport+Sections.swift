import Foundation
import Planner
import Plot

extension LayoutPlanReport {
    /// Each `-latcol` layout's crossover against its replicated twin, as sentences.
    func crossoverText() -> String {
        guard let list = latentCrossovers, !list.isEmpty else { return "" }
        var s = "\nSharded latent projections in a decode step (projected on \(list[0].hardware), context \(context), per layer):\n"
        for c in list {
            s += "  \(c.layout) against \(c.against): "
            if let b = c.stopsWinningAtBatch {
                s += b == 1 ? "slower at every batch up to \(c.batches.last ?? 0) (the all-gather costs more than it saves)"
                            : "faster up to a batch of \(b - 1) sequence\(b == 2 ? "" : "s") per DP group, no faster from \(b) on"
            } else {
                s += "faster at every batch up to \(c.batches.last ?? 0) sequences per DP group"
            }
            let i = c.batches.lastIndex { $0 <= c.planBatch } ?? 0
            s += String(format: " (batch %d: %@ against %@)", c.batches[i], Format.seconds(c.sharded[i]), Format.seconds(c.replicated[i]))
            if let l = c.breakEvenLatencySeconds {
                s += String(format: "; at batch %d it wins while each all-gather step's latency is below %.2f µs (assumed %.2f µs)",
                            c.planBatch, l * 1e6, c.assumedLatencySeconds * 1e6)
            } else {
                s += "; at batch \(c.planBatch) no link latency makes it win"
            }
            s += "\n"
        }
        return s
    }

    /// Each `-latcol` layout's decode-step time over its replicated twin's, by batch (SVG): below
    /// 1 it wins. nil without a crossover to draw.
    public func crossoverFigure() -> String? {
        guard let list = latentCrossovers, let first = list.first else { return nil }
        let colors = [Palette.blue, Palette.vermillion, Palette.green, Palette.purple]
        let xs = first.batches.map { log2(Double($0)) }
        var series: [LineChart.Series] = list.enumerated().map { k, c in
            .init(name: "\(c.layout) / \(c.against)", points: zip(xs, zip(c.sharded, c.replicated).map { $0 / $1 }).map { ($0, $1) },
                  color: colors[k % colors.count])
        }
        series.append(.init(name: "break-even", points: [(xs.first ?? 0, 1), (xs.last ?? 0, 1)], color: Palette.grey, dashed: true))
        let ticks = first.batches.enumerated().filter { $0.offset % 2 == 0 }.map(\.element)
        var chart = LineChart(
            title: "Sharded latent projections, decode step: \(model), \(ranks) ranks, context \(context)",
            subtitle: "step time with -latcol over the same layout replicated; below 1 it wins; projected on \(first.hardware), \(dtype) (mla-tp plan --layouts)",
            series: series, xTitle: "sequences per DP group (batch)", yTitle: "time ratio, sharded / replicated",
            xTicks: ticks.map { log2(Double($0)) }, xTickLabels: ticks.map(String.init))
        chart.frame = Frame(width: 860, height: 460)
        return chart.render()
    }
}

extension LayoutPlanReport {
    /// A line per layout whose tp pads the heads: the zero heads and what they waste.
    func paddingText() -> String {
        let rows = layouts.compactMap { r -> String? in
            guard let pad = r.plan.padding else { return nil }
            return "  \(r.plan.layout): \(pad.modelHeads) heads padded to \(pad.paddedHeads) with zero heads: "
                + "\(Format.bytes(pad.bytes * layers)) of zero weights per TP group, \(Format.gflop(pad.prefillFlops * layers)) GFLOP of the prefill and "
                + "\(Format.gflop(pad.decodeFlops * layers)) of a decode step on them\n"
        }
        return rows.isEmpty ? "" : "\nPadded heads (a tp that does not divide the heads, as run --pad-heads holds them):\n" + rows.joined()
    }
}
