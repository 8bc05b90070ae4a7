import ArgumentParser
import Jobs
import MLA
import TensorCore
import TensorParallel

/// `--invariant`: the forward whose every reduction runs in a fixed order (`ForwardMode`).
struct ModeOptions: ParsableArguments {
    @Flag(help: ArgumentHelp(
        "Invariant mode: each sequence's output has the same bits at every tp, dcp and dp, in any batch, prefilled whole, in chunks or decoded token by token.",
        discussion: "Every product through fixed-order kernels, one attention form (absorbed) for every token over 8 fixed key classes merged in one tree, o_proj summed in fixed head blocks along one tree whose top is the cross-rank reduction (MPI_Sendrecv). tp must divide the head blocks (8 for 8 or more heads), dcp must divide 8; f32 or bf16 weights (not fp8). See docs/invariance.md."))
    var invariant = false

    var mode: ForwardMode { invariant ? .invariant : .default }

    /// The flags `--invariant` overrides or cannot serve, refused before any rank starts.
    func validate(model: ModelOptions, reduce: CollectiveOptions, decode: DecodePath = .absorbed) throws {
        guard invariant else { return }
        if decode == .naive {
            throw ValidationError("--invariant attends every token in one form, absorbed — drop --decode naive, or drop --invariant")
        }
        if reduce.allreduceDType == .bf16 {
            throw ValidationError("--invariant sums o_proj's partials in f32 along a fixed tree, which --allreduce-dtype bf16 would override — drop --allreduce-dtype bf16, or drop --invariant")
        }
        do { try InvariantLayout.check(quantization: model.storage.quantization) } catch { throw ValidationError(error.description) }
    }
}
