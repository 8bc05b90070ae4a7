import ExitClass

/// An unreadable or malformed file is the input's fault; a failed child job is internal.
extension MeasureError: ExitClassified {
    public var failureClass: FailureClass { isInputError ? .input : .internal }
}
