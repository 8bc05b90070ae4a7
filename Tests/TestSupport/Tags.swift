import Foundation
import Testing

/// What a test needs beyond its own process (README, "Tests"). A test with neither tag is a unit
/// test: in-process, seconds.
extension Tag {
    /// Spawns the built `mla-tp`, under `mpirun -n K` or alone.
    @Tag public static var mpirun: Self
    /// Runs `launch/two-hosts` (two network namespaces on this machine; root for most of them).
    @Tag public static var twoHost: Self
}

/// The lane `launch/test` runs: `MLATP_TEST_LANE=fast` (`launch/test --fast`) is the unit tests
/// only; unset, every test. `swift test` 6.3 cannot select tests by tag from its command line
/// (`--filter`/`--skip` match test ids only), so the tagged suites also carry `.skippedInFastLane`.
public enum TestLane {
    public static let fast = ProcessInfo.processInfo.environment["MLATP_TEST_LANE"] == "fast"
}

extension Trait where Self == ConditionTrait {
    /// Skips a suite tagged `.mpirun` or `.twoHost` in the fast lane.
    public static var skippedInFastLane: Self {
        .disabled(if: TestLane.fast, "the fast lane (MLATP_TEST_LANE=fast, launch/test --fast) runs the unit tests only")
    }
}
