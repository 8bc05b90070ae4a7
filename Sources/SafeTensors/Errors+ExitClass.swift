import ExitClass

// The failure class of each SafeTensors error (see ExitClass).

/// An output that would overwrite an input or collide with another output: the flags' fault.
extension OutputConflict: ExitClassified {
    public var failureClass: FailureClass { .usage }
}

/// A directory output that is no directory, or is another writer's: the flags' fault (or wait).
extension OutputDirectoryError: ExitClassified {
    public var failureClass: FailureClass { .usage }
}

extension CheckpointIndexError: ExitClassified {
    public var failureClass: FailureClass { .input }
}

extension SafeTensorsHeaderError: ExitClassified {
    public var failureClass: FailureClass { .input }
}

extension SafeTensorsReadError: ExitClassified {
    public var failureClass: FailureClass { .input }
}

/// Writing fails on the writing rank alone: it prints its line and aborts the job.
extension SafeTensorsWriteError: ExitClassified {
    public var failureClass: FailureClass { .input }
    public var seenByEveryRank: Bool { false }
}
