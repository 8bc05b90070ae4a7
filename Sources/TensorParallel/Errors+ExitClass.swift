import ExitClass

// The failure class of each TensorParallel error (see ExitClass): a tp or layout that cannot
// split the layer is a config error.

extension TPError: ExitClassified {
    public var failureClass: FailureClass { .config }
}

extension LayoutError: ExitClassified {
    public var failureClass: FailureClass { .config }
}
