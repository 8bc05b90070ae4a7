import Foundation
import Launch
import MLA
import Measure

/// The child jobs of one parent command (`sweep`, `invariance`): each written as a job file into
/// `out`/jobs/ with the parent's model and reduction, then run as `mpirun -n K mla-tp job FILE`.
public struct ChildJobs {
    public var choice: ModelChoice
    public var reduction: ReductionChoice
    public var mode: ForwardMode = .default
    public var out: String
    public var launcher: MPILauncher

    public init(choice: ModelChoice, reduction: ReductionChoice, mode: ForwardMode = .default, out: String, launcher: MPILauncher) {
        self.choice = choice
        self.reduction = reduction
        self.mode = mode
        self.out = out
        self.launcher = launcher
    }

    /// Writes the job (`work` with this parent's model and reduction) to `jobs/NAME.json` in `out`
    /// and runs it on `ranks` ranks, showing it in `progress`; a failed job throws, naming the
    /// command that reruns it.
    @discardableResult
    public func run(_ what: String, name: String, ranks: Int, _ work: JobDescription.Work, timeout: Int,
                    _ progress: SweepProgress) throws -> ChildProcess.Result {
        let path = (out as NSString).appendingPathComponent("jobs/\(name).json")
        try JobDescription(model: choice, reduction: reduction, mode: mode, work: work).write(to: path)
        let r = progress.run(what) { tick in launcher.run(ranks: ranks, ["job", path], timeout: timeout, onTick: tick) }
        guard r.status == 0 else {
            throw MeasureError.childFailed(what: what, result: r, remedy: "rerun that job by hand: mpirun -n \(ranks) mla-tp job \(path)")
        }
        return r
    }
}
