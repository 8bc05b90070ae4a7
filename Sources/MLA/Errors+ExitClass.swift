import ExitClass

// The failure class of each MLA error (see ExitClass). The size budget's error has its own file
// (Sources/Planner/SizeBudget+ExitClass.swift), beside the budget.

/// A config file that cannot be read or parsed is an input problem; a value it holds that
/// cannot run is a config problem.
extension ConfigError: ExitClassified {
    public var failureClass: FailureClass {
        switch self {
        case .unreadable, .notJSON, .duplicateKey: return .input
        default: return .config
        }
    }
}

extension GateMismatchError: ExitClassified {
    public var failureClass: FailureClass { .config }
}

extension GateShapeError: ExitClassified {
    public var failureClass: FailureClass { .input }
}

extension GateLayoutError: ExitClassified {
    public var failureClass: FailureClass { .usage }
}

extension BatchError: ExitClassified {
    public var failureClass: FailureClass { .input }
}

extension ServingScheduleError: ExitClassified {
    public var failureClass: FailureClass { .usage }
}

extension InitTargetError: ExitClassified {
    public var failureClass: FailureClass { .usage }
}

/// A non-finite output after o_proj's allreduce is the same on every rank, and a stage computed
/// from replicated weights is too: treated as shared, so that it is printed once; when it was one
/// rank's alone, the failure barrier's deadline turns it into an abort.
extension NumericError: ExitClassified {
    public var failureClass: FailureClass { .numeric }
}

extension CheckpointError: ExitClassified {
    public var failureClass: FailureClass { .input }
}

extension InvariantLayoutError: ExitClassified {
    public var failureClass: FailureClass { .usage }
}
