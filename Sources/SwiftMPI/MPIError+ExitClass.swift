import ExitClass

/// An MPI failure is internal, and one rank's own: that rank prints it and aborts the job.
extension MPIError: ExitClassified {
    public var failureClass: FailureClass { .internal }
    public var seenByEveryRank: Bool { false }
}
