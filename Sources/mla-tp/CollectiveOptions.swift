import ArgumentParser
import SwiftMPI
import TensorCore
import TensorParallel

/// How o_proj's partial sums are reduced (`--allreduce`, `--allreduce-dtype`).
struct CollectiveOptions: ParsableArguments {
    enum Choice: String, ExpressibleByArgument, CaseIterable { case auto, mpi }

    @Option(help: ArgumentHelp(
        "How o_proj's partial sums are reduced: auto or mpi.",
        discussion: "auto: payloads up to 1 MiB (a decode step's) through a shared-memory window when every rank is on one host and no core hosts two ranks, MPI_Allreduce otherwise; mpi: always MPI_Allreduce (MPI_Allgather for a bf16 reduction)."))
    var allreduce: Choice = .auto

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

    /// What the reduction runs in for a model held in `dtype`.
    func reduction(dtype: Precision) -> Precision { allreduceDType ?? dtype }

    /// Collectives over `world` as chosen, for a model held in `dtype`.
    func collectives(_ world: Communicator, dtype: Precision) -> Collectives {
        let c = Collectives(world, reducePrecision: reduction(dtype: dtype))
        if allreduce == .mpi { c.sharedMemoryLimit = 0 }
        return c
    }
}
