import Foundation
@testable import Jobs
import Testing

/// `--max-wait` bounds the wait for an idle machine to the second: a 1 s limit waited a whole
/// 10 s polling step before.
struct SweepWaitTests {
    @Test func theWaitForIdleEndsAtMaxWait() {
        let progress = SweepProgress(rewrite: false) { _ in }
        let start = Date()
        progress.waitForIdle(-1, maxWait: 1)      // a load average never below -1: waits until --max-wait
        let waited = Date().timeIntervalSince(start)
        #expect(waited >= 0.9 && waited < 4, "waited \(waited) s")
    }
}
