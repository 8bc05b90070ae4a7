import Foundation
import Jobs
import Measure
import MLA
import Planner
import Report
import SafeTensors
import TensorParallel

extension Plan {
    /// `--layouts`: each layout's busiest rank, side by side.
    func compare(_ names: String, ranks: Int, config: MLAConfig, name: String) throws {
        let list = try ParallelLayout.list(names, ranks: ranks)
        for l in list { try config.validate(tp: l.tp, latent: l.latent, padHeads: true) }      // a tp that does not divide the heads is planned padded
        let hw = try hardware?.hardware(ratesFile: rates, precision: model.choice.storage.activations) {
            try ChildJobs.probeRates(choice: model.choice, config: config, ranks: min(ranks, ProcessInfo.processInfo.activeProcessorCount),
                                     tokens: batchSize, sequence: max(context, 1), context: context, launcher: Runtime.launcher)
        }
        let report = try LayoutPlanReport(config: config, model: name, ranks: ranks, layouts: list, context: context, batch: batchSize,
                                      layers: layers, dtype: model.choice.quantization == .fp8 ? "fp8 weights, bf16 activations" : model.dtype.rawValue,
                                      bytesPerElement: model.dtype.bytesPerElement, cacheDType: model.choice.kvCacheDType,
                                      memoryPerRank: memoryPerRank?.bytes, hardware: hw.map { model.choice.holding($0, config: config) },
                                      quantization: model.choice.quantization)
        if let figure {
            try AtomicFile.write(Data(report.figure().utf8), to: figure)
            // Beside it: where a -latcol layout stops winning (with a hardware model).
            if let crossover = report.crossoverFigure() {
                let path = URL(fileURLWithPath: figure).deletingLastPathComponent().appendingPathComponent("latent-crossover.svg").path
                try AtomicFile.write(Data(crossover.utf8), to: path)
            }
        }
        RankOutputShim.out(json ? try report.json() : report.text())
    }
}
