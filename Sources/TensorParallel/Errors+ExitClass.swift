import ExitClass

// The failure class of each TensorParallel error (see ExitClass): a tp or layout that cannot
// split the layer is a config error.

extension TPError: ExitClassified {
    public var failureClass: FailureClass { .config }
}

extension LayoutError: ExitClassified {
    public var failureClass: FailureClass { .config }
}

/// A weight that cannot be held as asked is bad input (the checkpoint's values).
extension WeightValueError: ExitClassified {
    public var failureClass: FailureClass { .input }
}
