import ExitClass
import Launch
@testable import Measure
@testable import MLA
import Planner
@testable import Report
import SafeTensors
import SwiftMPI
import TensorCore
import TensorParallel
import Testing

/// Each error type states its class beside its definition; the class decides the exit code the
/// README documents (2 usage, 3 config, 4 input, 5 numeric, 70 internal).
struct FailureClassTests {
    @Test func eachClassExitsWithItsDocumentedCode() {
        let documented: [FailureClass: Int32] = [.usage: 2, .config: 3, .input: 4, .numeric: 5, .internal: 70]
        #expect(Dictionary(uniqueKeysWithValues: FailureClass.allCases.map { ($0, $0.rawValue) }) == documented)
    }

    @Test func usageErrorsExitWithTwo() {
        expect(.usage, GateLayoutError(layout: .packedAsInterleaved, form: GateForm()), "--gate")
        expect(.usage, ServingScheduleError.negativeDecodeSteps(-1), "-1")
        expect(.usage, OutputConflict.emptyPath, "output path is empty")
        expect(.usage, OutputDirectoryError.emptyPath, "--out is empty")
    }

    @Test func configErrorsExitWithThree() {
        expect(.config, ConfigError.headsNotDivisible(heads: 8, tp: 3), "tp=3")
        expect(.config, ConfigError.nonPositive(key: "kv_lora_rank", value: 0), "kv_lora_rank")
        expect(.config, TPError.indivisible(name: "w1", width: 90, tp: 4), "90")
        expect(.config, LayoutError.dpDoesNotDivideRanks(dp: 3, ranks: 4), "3")
        expect(.config, GateMismatchError(tokens: 16, heads: 8, vHeadDim: 32, tp: 2, rank: 0), "tp=2")
        expect(.config, CountOverflow(what: "weights", operands: [Int.max, 2]), "overflows")
        expect(.config, CapacityError.overflow(size: .init("--tokens", 5), what: "the cache", largest: 4), "--tokens")
    }

    @Test func inputErrorsExitWithFour() {
        // A config file that cannot be read or parsed is the input's fault, not a value's.
        expect(.input, ConfigError.unreadable(file: "x/config.json"), "x/config.json")
        expect(.input, ConfigError.notJSON(file: "config.json", detail: "eof"), "JSON")
        expect(.input, ConfigError.duplicateKey(file: "config.json", key: "hidden_size"), "hidden_size")
        expect(.input, ShapeError(op: "matmul", "[2, 3]", "[4, 5]"), "[4, 5]")
        expect(.input, GateShapeError(tensor: "gate.weight", found: [3], declared: "element", forms: []), "gate.weight")
        expect(.input, BatchError.negativeLength(-2), "-2")
        expect(.input, CheckpointError.layerOutOfRange(layer: 2, layers: 2), "2")
        expect(.input, CheckpointIndexError.checkpointNotFound(path: "/nope"), "/nope")
        expect(.input, SafeTensorsHeaderError.fileTooShort(file: "m.safetensors", fileSize: 3), "m.safetensors")
        expect(.input, SafeTensorsReadError.tensorNotFound(file: "m.safetensors", tensor: "q"), "q")
        expect(.input, MeasureError.incomplete(path: "r.json", what: "report", remedy: "rerun"), "r.json")
    }

    @Test func numericErrorsExitWithFive() {
        expect(.numeric, NumericError(stage: .q, rank: 1, token: 3, column: 10, value: .nan), "token 3")
        expect(.numeric, CheckFailure(message: "differs — report it"), "differs")
    }

    @Test func internalErrorsExitWithSeventy() {
        let mpi = MPIError(function: "MPI_Allreduce", code: 1)
        expect(.internal, mpi, "MPI_Allreduce")
        #expect(!mpi.seenByEveryRank, "an MPI failure is one rank's own: it must abort the job")
        let child = MeasureError.childFailed(what: "sweep step", result: .init(status: 1, stdout: "", stderr: "", seconds: 0, timedOut: false),
                                             remedy: "rerun")
        expect(.internal, child, "sweep step")
    }

    @Test func writeFailuresAreOneRanksOwn() {
        let e = SafeTensorsWriteError.ioFailure(path: "/out", operation: "write", errno: 28)
        expect(.input, e, "/out")
        #expect(!e.seenByEveryRank)
        #expect(TPError.indivisible(name: "w1", width: 90, tp: 4).seenByEveryRank)
    }

    /// `error` has class `want`, and its message (the line the user sees) mentions `needle`.
    func expect(_ want: FailureClass, _ error: any ExitClassified, _ needle: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(error.failureClass == want, "\(type(of: error)): \(error)", sourceLocation: sourceLocation)
        #expect(error.description.contains(needle), "\(error)", sourceLocation: sourceLocation)
    }
}
