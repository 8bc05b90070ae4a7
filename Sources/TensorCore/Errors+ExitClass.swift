import ExitClass

// The failure class of each TensorCore error (see ExitClass).

/// A size whose count overflows is a value to change: a config or flag error.
extension CountOverflow: ExitClassified {
    public var failureClass: FailureClass { .config }
}

/// A tensor of the wrong shape came from the input or a checkpoint.
extension ShapeError: ExitClassified {
    public var failureClass: FailureClass { .input }
}
