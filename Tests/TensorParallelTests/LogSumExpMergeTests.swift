import Foundation
import TensorParallel
import Testing
import TestSupport

/// Decode context parallelism's merge (`LogSumExpMerge.correct`, and `mergeByLogSumExp` around
/// it) against the float64 softmax over every rank's keys at once.
@Suite struct LogSumExpMergeTests {
    /// C ranks' partials of `problem`, each corrected with every rank's log-sum-exps, then summed
    /// in rank order (what the reduce-scatter adds up): `[rows, width]`. `poison` ranks' partial
    /// outputs are NaN before the correction.
    func merge(_ problem: LogSumExpMerge.Problem, poison: Set<Int> = []) -> (merged: [Float], corrected: [[Float]]) {
        let parts = (0..<problem.ranks).map { problem.partial(rank: $0) }
        let gathered = parts.flatMap(\.logSumExps)                                     // [C, rows]
        var merged = [Float](repeating: 0, count: problem.rows * problem.width), corrected: [[Float]] = []
        for (k, part) in parts.enumerated() {
            var out = poison.contains(k) ? part.outputs.map { _ in Float.nan } : part.outputs
            out.withUnsafeMutableBufferPointer { o in part.logSumExps.withUnsafeBufferPointer { l in gathered.withUnsafeBufferPointer { g in
                LogSumExpMerge.correct(o, width: problem.width, logSumExps: l, gathered: g)
            } } }
            for i in merged.indices { merged[i] += out[i] }
            corrected.append(out)
        }
        return (merged, corrected)
    }

    @Test(arguments: [1, 2, 4, 8])
    func correctedPartialsSumToTheFloat64SoftmaxOverEveryRanksKeys(ranks: Int) {
        let problem = LogSumExpMerge.Problem(ranks: ranks, rows: 40, width: 12)
        if ranks > 1 {                                                                 // the problem has empty shares
            #expect((0..<ranks).contains { k in (0..<40).contains { problem.keys(rank: k, row: $0) == 0 } })
        }
        let error = problem.error(of: merge(problem).merged)
        #expect(error <= LogSumExpMerge.Problem.tolerance, "C = \(ranks): \(error)")
    }

    /// A rank that holds no key of a query has log-sum-exp −∞: its corrected row is 0 whatever
    /// its partial held (NaN here), and the merge still equals the float64 reference.
    @Test(arguments: [2, 4, 8])
    func aRankWithNoKeyContributesNothingEvenWhenItsPartialIsNaN(ranks: Int) {
        let empty: Set<Int> = ranks == 2 ? [1] : [0, ranks - 1]
        let problem = LogSumExpMerge.Problem(ranks: ranks, rows: 24, width: 8, emptyRanks: empty)
        let (merged, corrected) = merge(problem, poison: empty)
        for k in empty { #expect(corrected[k].allSatisfy { $0 == 0 }, "rank \(k)") }
        let error = problem.error(of: merged)
        #expect(error <= LogSumExpMerge.Problem.tolerance, "C = \(ranks): \(error)")
    }

    @Test func aRowThatNoRankSeesBecomesZeroRatherThanNaN() {
        var partial: [Float] = [1, -2, 3, 4]                                           // [2 rows, 2]
        let own: [Float] = [-.infinity, 0.5], gathered: [Float] = [-.infinity, 0.5, -.infinity, 1.5]   // [2 ranks, 2 rows]
        partial.withUnsafeMutableBufferPointer { p in own.withUnsafeBufferPointer { o in gathered.withUnsafeBufferPointer { g in
            LogSumExpMerge.correct(p, width: 2, logSumExps: o, gathered: g)
        } } }
        let weight = Float(1 / (1 + exp(1.0)))                                         // e^0.5 / (e^0.5 + e^1.5)
        #expect(partial[0] == 0 && partial[1] == 0)
        #expect(isClose(partial[2], 3 * weight) && isClose(partial[3], 4 * weight), "\(partial)")
    }

    /// On one rank the collective step is two copies around a correction by exactly 1.
    @Test func theCollectiveStepOnOneRankReturnsThePartialUnchanged() throws {
        let problem = LogSumExpMerge.Problem(ranks: 1, rows: 5, width: 4)
        var (partial, lse) = problem.partial(rank: 0)
        var gathered = [Float](repeating: .nan, count: 5), merged = [Float](repeating: .nan, count: 20)
        try partial.withUnsafeMutableBufferPointer { p in try lse.withUnsafeBufferPointer { l in
            try gathered.withUnsafeMutableBufferPointer { g in try merged.withUnsafeMutableBufferPointer { m in
                try Collectives.local.mergeByLogSumExp(p, width: 4, logSumExps: l, gathered: g, into: m)
            } }
        } }
        #expect(merged == problem.partial(rank: 0).outputs && gathered == lse)
    }
}

/// The collective step under real `mpirun -n C`: `mla-tp diagnose` merges a seeded problem's
/// partials (the last rank holding no key when C > 2) and measures every rank's block against
/// the same float64 reference.
@Suite(.serialized, .tags(.mpirun), .skippedInFastLane) struct LogSumExpMergeMPITests {
    @Test(arguments: [2, 4, 8])
    func realRanksMergeToTheFloat64Softmax(ranks: Int) throws {
        let r = MPIJob.run(ranks: ranks, ["diagnose"], timeout: 90)
        #expect(r.status == 0, "\(r)")
        let line = try #require(r.stdout.split(separator: "\n").first { $0.hasPrefix("dcp log-sum-exp merge") }, "\(r)")
        #expect(line.contains("over \(ranks) ranks") && line.hasSuffix("PASS"), "\(line)")
        let error = try #require(line.components(separatedBy: "largest error ").last?.split(separator: " ").first.flatMap { Double($0) })
        #expect(error <= LogSumExpMerge.Problem.tolerance, "\(line)")
    }
}
