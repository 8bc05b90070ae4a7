import ArgumentParser
import Jobs
import TensorCore

/// How o_proj's partial sums are reduced (`--allreduce`, `--allreduce-dtype`).
struct CollectiveOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "How o_proj's partial sums are reduced: auto or mpi.",
        discussion: "auto: payloads up to 1 MiB (a decode step's) through a shared-memory window when every rank is on one host and no core hosts two ranks, MPI_Allreduce otherwise; mpi: always MPI_Allreduce (for a bf16 reduction: a reduce-scatter and an all-gather of bf16 chunks)."))
    var allreduce: ReductionChoice.Route = .auto

    @Option(name: .customLong("allreduce-dtype"), help: ArgumentHelp(
        "What o_proj's partial sums are reduced in: bf16 (the default under --dtype bf16) or f32.",
        discussion: "bf16 reduces as a bf16 engine does: each rank's partial rounded to bf16, the partials added in rank order with a rounding per addition, the same bits on every rank; f32 sums the partials as accumulated and rounds once."))
    var allreduceDType: Precision?

    /// A bf16 reduction of f32 partials is not a mode anyone runs.
    func validate(dtype: Precision) throws {
        if allreduceDType == .bf16 && dtype == .f32 {
            throw ValidationError("--allreduce-dtype bf16 reduces bf16 partials — add --dtype bf16, or drop --allreduce-dtype")
        }
    }

    /// These flags as one value: what a job, here or in a child process, is given.
    var choice: ReductionChoice { ReductionChoice(route: allreduce, dtype: allreduceDType) }
}
