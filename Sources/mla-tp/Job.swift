import ArgumentParser
import Jobs

/// `mpirun -n K mla-tp job FILE`: runs a job described in a JSON file, as `sweep` and
/// `invariance` start their child jobs — every option in one value, read once, through the same code as `run` and `sweep-step`.
struct Job: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the job a JSON job description holds (what `sweep` and `invariance` write into OUT/jobs/ for each child job).",
        shouldDisplay: false)

    @Argument(help: "A job description written by `mla-tp sweep` or `mla-tp invariance` (OUT/jobs/NAME.json).")
    var file: String

    func run() throws {
        let job = try JobDescription.load(file)
        switch job.work {
        case let .run(spec): try Run.perform(job.model, job.reduction, job.mode, spec)
        case let .step(spec): try SweepStep.perform(job.model, job.reduction, job.mode, spec)
        case let .invariance(spec): try Invariance.perform(job, spec)
        }
    }
}
