#if canImport(Glibc)
import Glibc
#endif
import SwiftMPI
import TensorCore

extension Collectives {
    /// What `bf16ReductionSelfTest` found: elements (over every rank) that differ from the
    /// rank-order sum every rank can compute on its own, ranks whose result bits differ from rank 0's,
    /// and the bytes each rank's `Collectives` counted as sent against its ring share.
    public struct BF16ReductionCheck: Sendable, Equatable {
        public var path: AllReducePath
        public var wrongElements: Int
        public var ranksDisagreeing: Int
        /// Values each rank reduced, over every call (Σn).
        public var values: Int
        /// `sentBytes` per rank, over every call.
        public var sentBytes: [Int]
        /// What each rank sends with a ring's traffic (`BF16Reduction.Chunks.valuesSent`, in bytes)
        /// on the MPI path, over every call; 0 through the window.
        public var ringBytes: [Int]
        /// Ranks whose counted traffic is not their ring share.
        public var ranksOffTheRing: Int { zip(sentBytes, ringBytes).filter { $0 != $1 }.count }
        public var pass: Bool { wrongElements == 0 && ranksDisagreeing == 0 && ranksOffTheRing == 0 }
    }

    /// The lengths the bf16 self-test reduces: fewer values than ranks, and counts that tp = 2, 3
    /// and 4 do not divide (so chunks differ in size), up to 4097.
    public static let bf16SelfTestLengths = [0, 1, 2, 7, 4097, 1001, 4095]

    /// `calls` bf16 sum-allreduces of the `bf16SelfTestLengths` over `comm`, through the
    /// shared-memory window where it applies and through MPI (`sharedMemoryLimit` 0: the
    /// reduce-scatter and all-gather of chunks), with a different rank arriving last on each call.
    /// Every rank knows every rank's partial, so it checks its result against `BF16Reduction`'s
    /// rank-order sum bit for bit and its counted `sentBytes` against its ring share; then the
    /// ranks compare their results. Collective over `comm`.
    public static func bf16ReductionSelfTest(_ comm: Communicator, calls: Int = 60) throws -> [BF16ReductionCheck] {
        let p = comm.size, lengths = bf16SelfTestLengths
        var checks: [BF16ReductionCheck] = []
        for limit in [1 << 20, 0] {
            let c = Collectives(comm, reducePrecision: .bf16)
            c.sharedMemoryLimit = limit
            var wrong = 0, digest: UInt64 = 0, values = 0, ring = 0
            for call in 0..<calls {
                let n = lengths[call % lengths.count]
                // Partial of rank r: values that bf16 does not hold exactly, of mixed sign and size,
                // so that the order of the additions shows in the bits.
                let partial = { (r: Int) in (0..<n).map { j in Float((j * 37 + r * 101 + call * 7) % 1999 - 999) * (r % 2 == 0 ? 1.0037 : 0.013) } }
                var m = try Matrix(rows: 1, cols: n, values: partial(comm.rank))
                if call % p == comm.rank { usleep(300) }                       // another rank arrives last each call
                try c.allReduceSum(&m)
                let expected = BF16Reduction.sum((0..<p).map { try! Matrix(rows: 1, cols: n, values: partial($0)) })
                wrong += zip(m.storage, expected.storage).filter { $0.bitPattern != $1.bitPattern }.count
                for v in m.storage { digest = (digest &* 0x100_0000_01b3) ^ UInt64(v.bitPattern) }
                values += n
                if c.lastPath != .sharedMemory { ring += 2 * BF16Reduction.Chunks(count: n, ranks: p).valuesSent(by: comm.rank) }
            }
            let facts = try comm.allGather([Int64(bitPattern: digest), Int64(wrong), Int64(c.sentBytes), Int64(ring)])   // 4 per rank
            let fact = { (k: Int) in stride(from: k, to: facts.count, by: 4).map { Int(facts[$0]) } }
            let digests = fact(0)
            checks.append(BF16ReductionCheck(path: c.lastPath, wrongElements: fact(1).reduce(0, +),
                                             ranksDisagreeing: digests.filter { $0 != digests[0] }.count,
                                             values: values, sentBytes: fact(2), ringBytes: fact(3)))
        }
        return checks
    }

    /// What `logSumExpMergeSelfTest` found over every rank of the group.
    public struct LogSumExpMergeCheck: Sendable, Equatable {
        public var ranks: Int
        public var rows: Int
        /// Ranks that held no key of any row.
        public var emptyRanks: Int
        /// The largest error of a merged value against the float64 softmax over every rank's
        /// keys, relative to the largest magnitude (`LogSumExpMerge.Problem.error`).
        public var worstError: Double
        /// Within `LogSumExpMerge.Problem.tolerance`.
        public var pass: Bool { worstError <= LogSumExpMerge.Problem.tolerance }
    }

    /// `mergeByLogSumExp` over `comm` on a seeded `LogSumExpMerge.Problem` of `rowsPerRank`
    /// queries per rank: some ranks hold no key of some queries, and with more than two ranks
    /// the last holds none at all. Each rank merges its partials and measures its block against
    /// the float64 reference, which every rank computes on its own. Collective over `comm`.
    public static func logSumExpMergeSelfTest(_ comm: Communicator, rowsPerRank: Int = 6, width: Int = 16) throws -> LogSumExpMergeCheck {
        let c = comm.size, own = rowsPerRank * width
        let problem = LogSumExpMerge.Problem(ranks: c, rows: c * rowsPerRank, width: width, emptyRanks: c > 2 ? [c - 1] : [])
        var (partials, lse) = problem.partial(rank: comm.rank)                            // [C·n, width], [C·n]
        var gathered = [Float](repeating: .nan, count: c * lse.count)                   // [C, C·n]
        var merged = [Float](repeating: .nan, count: own)                               // [n, width]
        try partials.withUnsafeMutableBufferPointer { p in
            try lse.withUnsafeBufferPointer { l in
                try gathered.withUnsafeMutableBufferPointer { g in
                    try merged.withUnsafeMutableBufferPointer { m in
                        try Collectives(comm).mergeByLogSumExp(p, width: width, logSumExps: l, gathered: g, into: m)
                    }
                }
            }
        }
        let errors = try comm.allGather(value: problem.error(of: merged, firstRow: comm.rank * rowsPerRank))
        return LogSumExpMergeCheck(ranks: c, rows: problem.rows, emptyRanks: problem.emptyRanks.count,
                                   worstError: errors.max() ?? 0)
    }
}
