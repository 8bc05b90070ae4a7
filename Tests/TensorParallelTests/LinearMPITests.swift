import ExitClass
import Foundation
import Testing
import TestSupport
import TensorParallel

/// The column → row pair under real `mpirun -n K`, held to the layers' own shards.
@Suite(.serialized, .tags(.mpirun), .skippedInFastLane) struct LinearMPITests {
    static let (tokens, input, hidden, output, seed) = (8, 64, 96, 32, UInt64(7))
    static let args = ["linear", "--tokens", "\(tokens)", "--input", "\(input)", "--hidden", "\(hidden)", "--output", "\(output)",
                       "--seed", "\(seed)"]

    @Test(arguments: [1, 2, 3, 4, 8])
    func shardedPairEqualsUnshardedResult(ranks: Int) throws {
        let r = MPIJob.run(ranks: ranks, Self.args)
        #expect(r.status == 0, "\(r)")
        #expect(r.stdout.contains("tp=\(ranks)\n"), "\(r)")
        let pair = try LinearPair(tokens: Self.tokens, input: Self.input, hidden: Self.hidden, output: Self.output, seed: Self.seed)
        var covered: [Range<Int>] = []
        for rank in 0..<ranks {
            // Every rank's row of the table shows the shapes its layers hold.
            let (w1, w2) = try pair.layers(Shard(rank: rank, size: ranks))
            let row = try #require(Self.tableRow(rank, in: r.stdout), "no table row for rank \(rank): \(r)")
            #expect(row == ["\(w1.localShape)", "\(w2.localShape)", "[\(w2.globalShape.dims[0])]"], "rank \(rank): \(row)")
            #expect(w2.inRange == w1.outRange, "W2's columns are W1's rows on rank \(rank)")
            covered.append(w1.outRange)
        }
        #expect(covered.map(\.lowerBound) == covered.indices.map { $0 * Self.hidden / ranks } && covered.last?.upperBound == Self.hidden,
                "the shards tile W1's rows in rank order: \(covered)")
        let check = try #require(Self.check(in: r.stdout), "no check line: \(r)")
        #expect(check.relative <= check.tolerance && check.verdict == "PASS", "\(check)")
    }

    /// tp = 4 cannot split 90 rows: the job ends with the layer's own error, its class's code,
    /// printed once.
    @Test func indivisibleWidthFailsClearlyOnEveryRankWithinTenSeconds() throws {
        let pair = try LinearPair(tokens: Self.tokens, input: Self.input, hidden: 90, output: Self.output, seed: Self.seed)
        let error = try #require(throws: TPError.self) { try pair.layers(Shard(rank: 0, size: 4)) }
        let r = MPIJob.run(ranks: 4, ["linear", "--hidden", "90"], timeout: 30)
        #expect(r.status == error.failureClass.rawValue && error.failureClass == .config && !r.timedOut, "\(r)")
        #expect(r.seconds < 10, "\(r)")
        #expect(r.stderr.contains("mla-tp: rank 0: \(error)\n"), "the layer's message, said by rank 0: \(r)")
        #expect(r.stderr.components(separatedBy: "mla-tp: rank").count == 2, "printed once: \(r)")
    }

    /// The three shapes `[W1]  [W2]  [b]` in the table row of `rank` in `linear`'s output.
    static func tableRow(_ rank: Int, in stdout: String) -> [String]? {
        guard let line = stdout.split(separator: "\n").first(where: { $0.hasPrefix("\(rank) ") && $0.contains("[") }) else { return nil }
        return line.matches(of: /\[[0-9, ]+\]/).map { String($0.output) }
    }

    /// `max |Δ| = A, relative R (tolerance T)  VERDICT` from the check line.
    static func check(in stdout: String) -> (relative: Double, tolerance: Double, verdict: String)? {
        guard let m = stdout.firstMatch(of: /relative ([0-9.e+-]+) \(tolerance ([0-9.e+-]+)\)\s+(PASS|FAIL)/),
              let relative = Double(m.output.1), let tolerance = Double(m.output.2) else { return nil }
        return (relative, tolerance, String(m.output.3))
    }
}
