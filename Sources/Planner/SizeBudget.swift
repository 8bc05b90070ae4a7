import Foundation
import MLA
import TensorCore

/// The one check every size goes through before anything proportional to it is allocated.
///
/// Sizes come from flags (`--tokens`, `--seqs`, `--batch`, `--layers`, …), from config.json
/// and `--set`, from an input file's header and from a checkpoint; every subcommand calls the
/// budget with the sizes it will use (see `SizeBudget+Needs.swift`). The budget
/// - computes what the job will need with checked arithmetic (`Checked`): a size whose counts
///   overflow 64 bits is refused, never trapped on;
/// - holds the memory of every rank this host runs against what the host has (the smaller of
///   physical memory and the cgroup limit), with rank 0's extra work (the unsharded check, the
///   output it writes) on top;
/// - for `init`, holds the checkpoint's bytes against the free space of the target's filesystem.
/// A refusal is a `CapacityError` (exit 3) that names the size, what it needs, the limit and the
/// largest value that fits.
public struct SizeBudget: Sendable {
    /// Share of the host's memory the job may plan to use (the rest is the system's and the page cache's).
    public static let memoryFraction = 0.8

    /// The host's memory and disk as measured (or as a test sets them).
    public var machine: MachineCapacity
    /// Ranks of this job on this host (all of them on one host unless the launcher says otherwise).
    public var ranksOnHost: Int

    public init(ranksOnHost: Int, machine: MachineCapacity = .current) {
        self.machine = machine
        self.ranksOnHost = max(ranksOnHost, 1)
    }

    /// Bytes the job may use on this host.
    public var memoryLimit: Int { Int(Self.memoryFraction * Double(machine.memoryBytes)) }

    /// A size as the user gave it, for messages: `--tokens 40000`, `hidden_states rows of in.safetensors`.
    public struct Size: Sendable, Equatable, CustomStringConvertible {
        public var name: String
        public var value: Int
        /// The value as the user wrote it, when that is not one integer (`--probe-shape 9,9,9`).
        public var shown: String?
        /// What to do instead, when "use at most N" does not apply.
        public var remedy: String?
        /// What the memory is for, for the message.
        public var holds: String
        public init(_ name: String, _ value: Int, shown: String? = nil, remedy: String? = nil, holds: String = "weights and activations") {
            (self.name, self.value, self.shown, self.remedy, self.holds) = (name, value, shown, remedy, holds)
        }
        public var description: String {
            let v = shown ?? "\(value)"
            return name.hasPrefix("-") ? "\(name) \(v)" : "\(name) (\(v))"
        }
    }

    /// Bytes one job needs: on every rank, and on top of that on rank 0.
    public struct Need: Sendable, Equatable {
        public var perRank: Int
        public var rankZero: Int
        public init(perRank: Int, rankZero: Int = 0) { (self.perRank, self.rankZero) = (perRank, rankZero) }
    }

    /// Bytes this host needs for `need`: every local rank, plus rank 0's extra (counted on every
    /// host, since any host may hold rank 0).
    func hostBytes(_ need: Need) throws(CountOverflow) -> Int {
        try Checked.sum(Checked.product(ranksOnHost, need.perRank, what: "bytes of \(ranksOnHost) ranks"), need.rankZero,
                        what: "bytes on this host")
    }

    /// Refuses `size` unless `need(size.value)` fits this host's memory; `need` is evaluated
    /// with checked arithmetic only (nothing is allocated). The error gives the largest value
    /// of `size` that fits when `need` grows with it (`searchable`).
    public func require(_ size: Size, searchable: Bool = true, _ need: (Int) throws(CountOverflow) -> Need) throws(CapacityError) {
        let limit = memoryLimit
        func fits(_ v: Int) -> Bool { (try? hostBytes(need(v))).map { $0 <= limit } ?? false }
        let bytes: Int
        do {
            bytes = try hostBytes(need(size.value))
        } catch {
            throw .overflow(size: size, what: error.what, largest: searchable ? Self.largest(upTo: size.value, fits) : nil)
        }
        guard bytes <= limit else {
            throw .memory(size: size, neededBytes: bytes, perRankBytes: (try? need(size.value).perRank) ?? bytes, ranks: ranksOnHost,
                          limitBytes: limit, machineBytes: machine.memoryBytes, largest: searchable ? Self.largest(upTo: size.value, fits) : nil)
        }
    }

    /// Refuses a model whose weights alone do not fit: each rank's shard (and, with `check`,
    /// rank 0's unsharded copy), whatever the tokens. `model` names where the config came from.
    public func requireWeights(config: MLAConfig, tp: Int, gate: GateLayout, check: Bool, model: String) throws(CapacityError) {
        let size = Size("the weights of \(model) at tp=\(tp), bytes per rank", (try? Self.weightBytes(config: config, tp: tp, gate: gate)) ?? Int.max,
                        remedy: "run more ranks (-n) to shard them further" + (check ? ", or skip the check (--no-check)" : "")
                            + ", or use a smaller model")
        try require(size, searchable: false) { _ throws(CountOverflow) in
            Need(perRank: try Self.weightBytes(config: config, tp: tp, gate: gate),
                 rankZero: check ? try Checked.product(2, Self.weightBytes(config: config, tp: 1), what: "bytes of the unsharded layer") : 0)
        }
    }

    /// Refuses `size` unless `body(size.value)` counts without overflow (for `plan`, which
    /// allocates nothing proportional to its sizes but multiplies them).
    public static func requireCounts(_ size: Size, searchable: Bool = true, _ body: (Int) throws(CountOverflow) -> Void) throws(CapacityError) {
        do {
            try body(size.value)
        } catch {
            throw .overflow(size: size, what: error.what,
                            largest: searchable ? largest(upTo: size.value) { (try? body($0)) != nil } : nil)
        }
    }

    /// Refuses to write `bytes(size.value)` into `directory` (or, when it does not exist yet, the
    /// nearest existing directory above it) unless its filesystem has that much free.
    public func requireDisk(_ size: Size, directory: String, _ bytes: (Int) throws(CountOverflow) -> Int) throws(CapacityError) {
        guard let free = machine.freeDiskBytes(directory) else { return }
        func fits(_ v: Int) -> Bool { (try? bytes(v)).map { $0 <= free } ?? false }
        guard let needed = try? bytes(size.value), needed <= free else {
            throw .disk(size: size, directory: directory, neededBytes: (try? bytes(size.value)) ?? Int.max, freeBytes: free,
                        largest: Self.largest(upTo: size.value, fits))
        }
    }

    /// The largest v in 0...upper with `fits(v)`, for a `fits` that holds up to some value and
    /// fails above it; nil when not even 0 fits.
    static func largest(upTo upper: Int, _ fits: (Int) -> Bool) -> Int? {
        guard upper >= 0, fits(0) else { return nil }
        var lo = 0, hi = upper           // fits(lo) holds
        while lo < hi {
            let mid = lo + (hi - lo - 1) / 2 + 1      // in (lo, hi], without overflow at Int.max
            if fits(mid) { lo = mid } else { hi = mid - 1 }
        }
        return lo
    }
}

/// A size this machine cannot hold, or whose counts overflow: exit 3, before any allocation.
public enum CapacityError: Error, Equatable, CustomStringConvertible {
    case memory(size: SizeBudget.Size, neededBytes: Int, perRankBytes: Int, ranks: Int, limitBytes: Int, machineBytes: Int, largest: Int?)
    case overflow(size: SizeBudget.Size, what: String, largest: Int?)
    case disk(size: SizeBudget.Size, directory: String, neededBytes: Int, freeBytes: Int, largest: Int?)

    public var description: String {
        // In a unit that shows the number (a one-layer checkpoint is kB, not "0.0 GB").
        func gb(_ b: Int) -> String {
            let v = Double(b)
            return v >= 1e8 ? String(format: "%.1f GB", v / 1e9) : v >= 1e5 ? String(format: "%.1f MB", v / 1e6) : String(format: "%.1f kB", v / 1e3)
        }
        func most(_ size: SizeBudget.Size, _ largest: Int?) -> String {
            size.remedy ?? largest.map { "use at most \($0) (\(size.name))" } ?? "use a smaller \(size.name)"
        }
        switch self {
        case let .memory(size, needed, perRank, ranks, limit, machine, largest):
            let split = ranks > 1 ? " (\(ranks) ranks × \(gb(perRank)), \(size.holds))" : " (\(size.holds))"
            return "\(size) needs about \(gb(needed)) on this host\(split) but this machine allows \(gb(limit)) "
                + "(\(Int(SizeBudget.memoryFraction * 100))% of \(gb(machine))) — \(most(size, largest))"
                + (ranks > 1 ? ", or run the ranks on more hosts" : "")
        case let .overflow(size, what, largest):
            return "\(size) is too large: the count of \(what) overflows 64 bits — \(most(size, largest))"
        case let .disk(size, directory, needed, free, largest):
            // At the smallest size there is nothing smaller to use: only space to free.
            let remedy = largest == nil && size.value <= 1 ? "free space on it" : most(size, largest)
            return "\(size) needs about \(gb(needed)) in \(directory) but its filesystem has \(gb(free)) free — "
                + "\(remedy), or write somewhere with more space"
        }
    }
}
