import Foundation
import Launch
import MLA
import Measure
import Planner
import Report
import SafeTensors
import TensorParallel

extension SweepRunner {
    /// Runs every layout of `ranks` ranks on `batch` sequences of `context + 1` tokens (the last
    /// decoded), with the check; writes `layouts.json` into `out`.
    public func runLayouts(_ layouts: [ParallelLayout], ranks: Int, batch: Int, context: Int,
                           progress: SweepProgress) throws -> LayoutSweepReport {
        try OutputDirectory.subdirectory(file("jobs"))
        progress.total = layouts.count + 1
        // The machine's rates with as many ranks busy as will run at once, as the tp sweep probes
        // them: the projection of every layout's pass.
        progress.waitForIdle(waitForIdle, maxWait: maxWait)
        let rates = try probeRates(ranks: min(ranks, launcher.cores), tokens: max(1, batch * context), sequence: max(1, context),
                                    context: context, progress)
        var rows: [LayoutSweepReport.Row] = []
        for l in layouts {
            progress.waitForIdle(waitForIdle, maxWait: maxWait)
            var run = RunSpec()
            run.padHeads = config.numAttentionHeads % l.tp != 0          // a layout name's tp pads, as in plan
            (run.dp, run.dcp, run.latent, run.seqs, run.decodeSteps) = (l.dp, l.dcp, l.latent, Array(repeating: context + 1, count: batch), 1)
            (run.check, run.json, run.decode, run.passes) = (true, true, decode, repeats)
            let r = try job("\(l): \(batch) sequences of \(context) tokens, then a decode step", name: "layout-\(l)", ranks: ranks,
                            .run(run), timeout: timeout, progress)
            let report = try JSONDecoder().decode(RunReport.self, from: Data(r.stdout.utf8))
            let plan = try LayoutPlan(config: config, layout: l, gate: gate, context: context, batch: batch,
                                      bytesPerElement: choice.dtype.bytesPerElement, cacheDType: choice.kvCacheDType)
            var row = LayoutSweepReport.Row(layout: l.description, run: report, plan: plan,
                              cachedTokensMax: report.ranks.compactMap(\.cachedTokens).max() ?? 0,
                              anonymousBytesMax: report.ranks.map(\.anonymousMemory).max() ?? 0,
                              bytesSentRank0: (report.ranks.first?.communicators ?? []).flatMap(\.kinds).reduce(0) { $0 + $1.bytes })
            row.project(config: config, hardware: choice.holding(rates.hardware(for: choice.storage.activations), config: config))
            rows.append(row)
        }
        progress.finish()
        var report = LayoutSweepReport(model: model, ranks: ranks, batch: batch, context: context, rows: rows)
        report.rates = rates
        try AtomicFile.write(Data(try Format.json(report).utf8), to: file("layouts.json"))
        return report
    }
}
