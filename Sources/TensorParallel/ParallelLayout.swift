/// How a job's P ranks are arranged for attention: D data-parallel groups of P/D consecutive
/// ranks, each a tensor-parallel group (heads split P/D ways); inside each TP group, DCP groups
/// of C consecutive ranks that split every sequence's cached tokens (token i on DCP index i mod C).
///
///     P = 8, dp 2 × tp 4, dcp 2:   ranks 0 1 2 3 │ 4 5 6 7        DP groups (TP inside)
///                                   [0 1][2 3]     [4 5][6 7]      DCP groups
///
/// Each TP group holds MLA's latent down-projections as `latent` says (`LatentProjection`).
///
/// Names follow the plan's `--layouts`: `tp8`, `dp2xtp4`, `dp8` (tp 1), `tp8-dcp8`, `dp2xtp2-dcp2`,
/// with `-latcol` or `-latseq` last for the sharded latent projections (`tp8-latcol`).
public struct ParallelLayout: Codable, Sendable, Equatable, CustomStringConvertible {
    public var dp: Int
    public var tp: Int
    public var dcp: Int
    /// How each TP group holds q_a_proj and kv_a_proj_with_mqa (replicated, as the engines do).
    public var latent: LatentProjection
    /// Ranks the layout uses: dp · tp.
    public var ranks: Int { dp * tp }

    public init(dp: Int = 1, tp: Int, dcp: Int = 1, latent: LatentProjection = .replicated) {
        self.dp = dp
        self.tp = tp
        self.dcp = dcp
        self.latent = latent
    }

    private enum CodingKeys: String, CodingKey { case dp, tp, dcp, latent }

    /// Reads a layout written before `latent` existed as replicated.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(dp: try c.decode(Int.self, forKey: .dp), tp: try c.decode(Int.self, forKey: .tp), dcp: try c.decode(Int.self, forKey: .dcp),
                  latent: try c.decodeIfPresent(LatentProjection.self, forKey: .latent) ?? .replicated)
    }

    /// The layout of `ranks` ranks with `dp` groups and `dcp`; throws naming the numbers when
    /// they do not fit (D must divide P, C must divide the group's size).
    public init(ranks: Int, dp: Int, dcp: Int, latent: LatentProjection = .replicated) throws(LayoutError) {
        guard dp >= 1, dcp >= 1 else { throw .nonPositive(dp: dp, dcp: dcp) }
        guard ranks % dp == 0 else { throw .dpDoesNotDivideRanks(dp: dp, ranks: ranks) }
        guard (ranks / dp) % dcp == 0 else { throw .dcpDoesNotDivideGroup(dcp: dcp, group: ranks / dp, dp: dp) }
        self.init(dp: dp, tp: ranks / dp, dcp: dcp, latent: latent)
    }

    /// Parses a layout name (`tp8`, `dp2xtp4`, `dp8`, `tp8-dcp8`, `dp2xtp2-dcp2`, `tp8-latcol`) for `ranks` ranks
    /// (nil: the ranks the name gives, dp × tp, or `fallback` for a name without tp such as `dp4`).
    public init(name: String, ranks: Int?, fallback: Int? = nil) throws(LayoutError) {
        var rest = Substring(name), dp = 1, tp: Int?, dcp = 1, latent = LatentProjection.replicated
        func number(after prefix: String) -> Int? {
            guard rest.hasPrefix(prefix) else { return nil }
            rest = rest.dropFirst(prefix.count)
            let digits = rest.prefix { $0.isNumber }
            rest = rest.dropFirst(digits.count)
            return Int(digits)
        }
        if let d = number(after: "dp") {
            dp = d
            if rest.hasPrefix("x") { rest = rest.dropFirst(); tp = number(after: "tp"); if tp == nil { throw .badName(name) } }
        } else {
            tp = number(after: "tp")
            if tp == nil { throw .badName(name) }
        }
        if rest.hasPrefix("-dcp") {
            rest = rest.dropFirst()
            guard let c = number(after: "dcp") else { throw .badName(name) }
            dcp = c
        }
        if rest.hasPrefix("-") {
            guard let l = LatentProjection(suffix: rest.dropFirst()) else { throw .badName(name) }
            latent = l
            rest = ""
        }
        guard rest.isEmpty, dp >= 1, dcp >= 1, (tp ?? 1) >= 1 else { throw .badName(name) }
        // Every message about a name speaks of the name and --ranks, never of --dp, --dcp or -n.
        guard let ranks = ranks ?? (tp == nil ? fallback : tp.flatMap { t in dp.multipliedReportingOverflow(by: t).overflow ? nil : dp * t }) else {
            throw .ranksNotNamed(name: name)
        }
        guard let t = tp ?? (ranks % dp == 0 ? ranks / dp : nil) else { throw .dpInName(name: name, dp: dp, ranks: ranks) }
        let (product, overflow) = dp.multipliedReportingOverflow(by: t)
        guard !overflow, product == ranks else { throw .ranksMismatch(name: name, dp: dp, tp: t, ranks: ranks) }
        guard t % dcp == 0 else { throw .dcpInName(name: name, dcp: dcp, tp: t) }
        self.init(dp: dp, tp: t, dcp: dcp, latent: latent)
    }

    /// The layouts of a comma-separated list (`--layouts tp8,dp2xtp4`) for `ranks` ranks (nil:
    /// each name's own, `fallback` for names without tp); an empty list or an empty name in it
    /// (`''`, `,`, `tp8,`) is refused, not skipped.
    public static func list(_ names: String, ranks: Int?, fallback: Int? = nil) throws(LayoutError) -> [ParallelLayout] {
        let parts = names.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        guard !parts.contains(where: \.isEmpty) else { throw .emptyName(list: names) }
        var layouts: [ParallelLayout] = []
        for part in parts { layouts.append(try ParallelLayout(name: part, ranks: ranks, fallback: fallback)) }
        return layouts
    }

    public var description: String {
        (dp > 1 ? (tp == 1 ? "dp\(dp)" : "dp\(dp)xtp\(tp)") : "tp\(tp)") + (dcp > 1 ? "-dcp\(dcp)" : "") + latent.layoutSuffix
    }

    /// Where a rank sits.
    public struct Position: Codable, Sendable, Equatable {
        public var dpGroup: Int
        /// Rank within its TP group: its heads are `Shard(rank: tpRank, size: tp)`'s.
        public var tpRank: Int
        /// Which DCP group of its TP group, and its index in it (the tokens i with i mod C = index).
        public var dcpGroup: Int
        public var dcpIndex: Int
    }

    public func position(of rank: Int) -> Position {
        let tpRank = rank % tp
        return Position(dpGroup: rank / tp, tpRank: tpRank, dcpGroup: tpRank / dcp, dcpIndex: tpRank % dcp)
    }

    /// The TP shard (heads) of `rank`.
    public func shard(of rank: Int) -> Shard { Shard(rank: position(of: rank).tpRank, size: tp) }
}

/// A layout whose numbers do not fit the job. A config error: the message names the numbers.
public enum LayoutError: Error, Equatable, CustomStringConvertible {
    case nonPositive(dp: Int, dcp: Int)
    case dpDoesNotDivideRanks(dp: Int, ranks: Int)
    case dcpDoesNotDivideGroup(dcp: Int, group: Int, dp: Int)
    case badName(String)
    case ranksMismatch(name: String, dp: Int, tp: Int, ranks: Int)
    case dpInName(name: String, dp: Int, ranks: Int)
    case dcpInName(name: String, dcp: Int, tp: Int)
    case emptyName(list: String)
    case ranksNotNamed(name: String)

    public var description: String {
        func divisors(_ n: Int) -> String {
            guard n <= 1 << 20 else { return "the divisors of \(n)" }      // listed only where that is quick
            return (1...max(n, 1)).filter { n % $0 == 0 }.map(String.init).joined(separator: ", ")
        }
        switch self {
        case let .nonPositive(dp, dcp):
            return "--dp \(dp) and --dcp \(dcp) must be at least 1 — 1 means no data-parallel groups / no context split"
        case let .dpDoesNotDivideRanks(dp, ranks):
            return "--dp \(dp) does not divide the \(ranks) ranks of the job — use one of \(divisors(ranks)) or run with -n a multiple of \(dp)"
        case let .dcpDoesNotDivideGroup(dcp, group, dp):
            return "--dcp \(dcp) does not divide the tensor-parallel group of \(group) ranks (\(dp) data-parallel group\(dp == 1 ? "" : "s")) — use one of \(divisors(group))"
        case let .badName(name):
            return "layout \"\(name)\" is not a layout name — write tpT, dpD or dpDxtpT with numbers ≥ 1, an optional -dcpC and an optional -latcol or -latseq last, in lower case (e.g. tp8, dp2xtp4, dp8, tp8-dcp8, tp8-latcol)"
        case let .ranksMismatch(name, dp, tp, ranks):
            let (product, overflow) = dp.multipliedReportingOverflow(by: tp)
            return "layout \(name) uses \(dp) × \(tp) = \(overflow ? "more than \(Int.max)" : "\(product)") ranks, not the \(ranks) of --ranks — make dp × tp equal --ranks \(ranks)"
        case let .dpInName(name, dp, ranks):
            return "layout \(name) splits the \(ranks) ranks of --ranks into \(dp) data-parallel groups, which does not divide them — use dpD with D one of \(divisors(ranks))"
        case let .dcpInName(name, dcp, tp):
            return "layout \(name) splits each sequence's cache over \(dcp) of its \(tp) tensor-parallel ranks, which does not divide them — use -dcpC with C one of \(divisors(tp))"
        case let .ranksNotNamed(name):
            return "layout \(name) does not give its ranks — name its tp (tpT or dpDxtpT, e.g. dp2xtp1), or pass --ranks N for the names without it"
        case let .emptyName(list):
            return "--layouts '\(list)' has an empty layout name — list one or more names separated by commas, e.g. --layouts tp8,dp2xtp4,dp8"
        }
    }
}

extension ParallelLayout {
    /// Sequences per data-parallel group, balanced by tokens: longest first, each to the group
    /// holding the fewest tokens so far (ties to the lower group), each group's list in batch
    /// order. Every rank computes the same assignment. A group may get none (it still runs an
    /// empty forward, so that it enters every collective the job makes).
    public func assign(lengths: [Int]) -> [[Int]] {
        var groups = [[Int]](repeating: [], count: dp), load = [Int](repeating: 0, count: dp)
        for i in lengths.indices.sorted(by: { lengths[$0] != lengths[$1] ? lengths[$0] > lengths[$1] : $0 < $1 }) {
            let g = load.indices.min { load[$0] != load[$1] ? load[$0] < load[$1] : $0 < $1 }!
            groups[g].append(i)
            load[g] += lengths[i]
        }
        return groups.map { $0.sorted() }
    }
}
