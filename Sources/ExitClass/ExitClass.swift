/// The class of a failure, and the process exit code that reports it (README, "Exit codes").
///
/// | code | class                                          |
/// |------|------------------------------------------------|
/// | 2    | usage (bad flags)                              |
/// | 3    | config / validation (incl. the gate mismatch)  |
/// | 4    | input or checkpoint                            |
/// | 5    | numeric (NaN/Inf, a failed TP check)           |
/// | 70   | internal (MPI or a bug)                        |
public enum FailureClass: Int32, Sendable, CaseIterable {
    case usage = 2, config = 3, input = 4, numeric = 5, `internal` = 70
}

/// An error that knows its class: each module states it beside the error's definition, and the
/// command line (the only place that decides exit codes) reads it.
public protocol ExitClassified: Error, CustomStringConvertible {
    /// The class, hence the exit code, this error ends the job with.
    var failureClass: FailureClass { get }
    /// Whether every rank detects this error identically (then rank 0 alone prints it), rather
    /// than one rank alone (then that rank prints it and aborts the job).
    var seenByEveryRank: Bool { get }
}

extension ExitClassified {
    public var seenByEveryRank: Bool { true }
}
