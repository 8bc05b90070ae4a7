import ExitClass

/// A sharded result that differs from the unsharded forward is a numeric failure.
extension CheckFailure: ExitClassified {
    public var failureClass: FailureClass { .numeric }
}
