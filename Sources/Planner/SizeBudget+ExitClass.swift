import ExitClass

/// A size that does not fit this machine is a value to change: a config error.
extension CapacityError: ExitClassified {
    public var failureClass: FailureClass { .config }
}
