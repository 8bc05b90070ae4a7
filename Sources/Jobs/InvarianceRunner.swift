import Foundation
import MLA
import Measure
import Report
import SafeTensors
import TensorParallel

/// `mla-tp invariance`: each layout one child job under mpirun running every batch arrangement
/// and chunking of the same sequences; then every configuration compared with the first.
public struct InvarianceRunner {
    public var model: String
    /// The model, reduction and mode of every child job, passed whole in its job file.
    public var jobs: ChildJobs
    public var layouts: [ParallelLayout]
    /// Tokens of each sequence, by id.
    public var lengths: [Int]
    public var arrangements: [BatchArrangement]
    public var chunkings: [Chunking]
    public var decode: DecodePath
    public var timeout: Int

    public init(model: String, jobs: ChildJobs, layouts: [ParallelLayout], lengths: [Int], arrangements: [BatchArrangement],
                chunkings: [Chunking], decode: DecodePath, timeout: Int) {
        self.model = model
        self.jobs = jobs
        self.layouts = layouts
        self.lengths = lengths
        self.arrangements = arrangements
        self.chunkings = chunkings
        self.decode = decode
        self.timeout = timeout
    }

    func file(_ name: String) -> String { (jobs.out as NSString).appendingPathComponent(name) }

    /// Runs every layout's job (`progress` shows each), compares, writes `invariance.json` into the output directory.
    public func run(progress: SweepProgress) throws -> InvarianceReport {
        try OutputDirectory.subdirectory(file("jobs"))
        try OutputDirectory.subdirectory(file("traces"))
        progress.total = layouts.count
        let passes = arrangements.flatMap { a in chunkings.map { InvariancePass(arrangement: a, chunking: $0) } }
        var traces: [InvarianceTrace] = []
        for (i, l) in layouts.enumerated() {
            var spec = InvarianceSpec()
            (spec.dp, spec.dcp, spec.latent, spec.lengths, spec.passes, spec.decode) = (l.dp, l.dcp, l.latent, lengths, passes, decode)
            spec.out = file("traces/\(i)-\(l).json")
            let name = "invariance-\(i)-\(l)"
            try jobs.run("\(l): \(passes.count) pass\(passes.count == 1 ? "" : "es") over \(lengths.count) sequences", name: name, ranks: l.ranks,
                         .invariance(spec), timeout: timeout, progress)
            var trace = try MeasureError.decode(InvarianceTrace.self, path: spec.out, what: "invariance trace",
                                                remedy: "rerun that layout's job: mpirun -n \(l.ranks) mla-tp job \(file("jobs/\(name).json"))")
            let earlier = layouts[..<i].filter { $0 == l }.count          // a layout listed again: tp2, tp2#2
            trace.layout = earlier == 0 ? l.description : "\(l)#\(earlier + 1)"
            traces.append(trace)
        }
        progress.finish(what: "invariance")
        let report = try InvarianceReport(model: model, dtype: jobs.choice.dtype, decode: decode, lengths: lengths, traces: traces)
        try AtomicFile.write(Data(try Format.json(report).utf8), to: file("invariance.json"))
        return report
    }
}
