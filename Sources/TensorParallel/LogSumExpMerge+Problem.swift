import Foundation

extension LogSumExpMerge {
    /// A seeded merge problem with its float64 answer, shared by the merge's unit tests and
    /// `mla-tp diagnose`: `rows` queries whose keys are spread over `ranks` ranks. Rank k holds
    /// 0–4 of row r's keys (none for some pairs, so some shares are empty), and ranks in
    /// `emptyRanks` hold none at all; every row has a key somewhere. Scores span ±20, so the
    /// largest log-sum-exp must be taken out before exponentiating.
    public struct Problem: Sendable {
        public let ranks: Int
        public let rows: Int
        public let width: Int
        public let emptyRanks: Set<Int>
        /// The largest `error` an f32 merge of these partials may have: their log-sum-exps (up
        /// to about 22) are rounded to f32, so each factor carries a relative error of a few 1e-6.
        public static let tolerance = 1e-5

        public init(ranks: Int, rows: Int, width: Int, emptyRanks: Set<Int> = []) {
            precondition(ranks >= 1 && rows >= 0 && width >= 1 && emptyRanks.count < ranks
                         && emptyRanks.allSatisfy { (0..<ranks).contains($0) }, "merge problem: \(ranks) ranks, empty \(emptyRanks)")
            self.ranks = ranks
            self.rows = rows
            self.width = width
            self.emptyRanks = emptyRanks
        }

        /// Keys rank k holds for row r: the first rank from r mod C on that is not empty holds at least one.
        public func keys(rank k: Int, row r: Int) -> Int {
            guard !emptyRanks.contains(k) else { return 0 }
            let anchor = (0..<ranks).lazy.map { (r + $0) % ranks }.first { !emptyRanks.contains($0) }!
            let some = (k * 7 + r * 13 + 3) % 5                                   // 0 … 4
            return k == anchor ? max(some, 1) : some
        }

        func score(_ k: Int, _ r: Int, _ j: Int) -> Double { 20 * sin(Double(k) * 1.7 + Double(r) * 0.31 + Double(j) * 2.3) }
        func value(_ k: Int, _ r: Int, _ j: Int, _ c: Int) -> Double {
            sin(Double(k) * 0.7 + Double(r) * 1.1 + Double(j) * 0.13 + Double(c) * 0.57)
        }

        /// Rank k's partial attention, computed in float64 and stored in f32 as the attention
        /// kernel leaves it: `softmax · V` over its own keys `[rows, width]` and the log-sum-exp
        /// of its scores `[rows]` (−∞ and a zero row where it holds no key).
        public func partial(rank k: Int) -> (outputs: [Float], logSumExps: [Float]) {
            var out = [Float](repeating: 0, count: rows * width), lse = [Float](repeating: -.infinity, count: rows)
            for r in 0..<rows {
                let n = keys(rank: k, row: r)
                guard n > 0 else { continue }
                let s = (0..<n).map { score(k, r, $0) }, m = s.max()!
                let z = s.reduce(0) { $0 + exp($1 - m) }
                lse[r] = Float(m + log(z))
                for c in 0..<width {
                    out[r * width + c] = Float((0..<n).reduce(0) { $0 + exp(s[$1] - m) / z * value(k, r, $1, c) })
                }
            }
            return (out, lse)
        }

        /// The attention over every rank's keys at once, in float64: row r's softmax over the
        /// concatenated scores times the concatenated values, `[rows, width]`.
        public func reference() -> [Double] {
            var out = [Double](repeating: 0, count: rows * width)
            for r in 0..<rows {
                let keys = (0..<ranks).flatMap { k in (0..<self.keys(rank: k, row: r)).map { (k, $0) } }
                let s = keys.map { score($0.0, r, $0.1) }, m = s.max()!
                let z = s.reduce(0) { $0 + exp($1 - m) }
                for c in 0..<width {
                    out[r * width + c] = zip(keys, s).reduce(0) { $0 + exp($1.1 - m) / z * value($1.0.0, r, $1.0.1, c) }
                }
            }
            return out
        }

        /// Largest |merged − reference| over `merged`'s rows, starting at row `firstRow`, relative
        /// to the reference's largest magnitude; infinite when a merged value is not finite.
        public func error(of merged: [Float], firstRow: Int = 0) -> Double {
            let want = reference(), scale = max(want.map(abs).max() ?? 0, .leastNormalMagnitude)
            var worst = 0.0
            for (i, v) in merged.enumerated() {
                guard v.isFinite else { return .infinity }
                worst = max(worst, abs(Double(v) - want[firstRow * width + i]) / scale)
            }
            return worst
        }
    }
}
