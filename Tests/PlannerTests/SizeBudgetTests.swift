import Foundation
import Testing
import MLA
@testable import Planner
import SafeTensors
import TensorCore
import TensorParallel

/// The budget's arithmetic: every count checked (overflow throws, never traps), the memory of
/// every rank on a host against what it has, the disk for a checkpoint, and the largest size
/// that fits named in the refusal.
@Suite struct SizeBudgetTests {
    /// The closed form of the attention FLOPs equals the kernel's block-by-block walk.
    @Test func closedFormAttentionFlopsEqualTheBlockWalk() throws {
        let b = AttentionCounts.queryBlockRows
        for (nq, nk) in [(0, 0), (1, 1), (1, 101), (63, 63), (64, 64), (65, 65), (129, 200), (1000, 1000), (7, 4096)] {
            var walk = 0, i0 = 0
            while i0 < nq {
                let rows = min(b, nq - i0)
                walk += 2 * rows * (nk - nq + i0 + rows) * (24 + 16)
                i0 += rows
            }
            #expect(try AttentionCounts.expandedFlops(heads: 3, dq: 24, v: 16, nq: nq, nk: nk) == 3 * walk, "nq \(nq), nk \(nk)")
        }
    }

    /// Each checked count throws `CountOverflow` where plain arithmetic would trap.
    @Test func countsThatOverflowThrowInsteadOfTrapping() {
        let big = Int.max / 2
        #expect(throws: CountOverflow.self) { _ = try Gemm.flops(m: big, n: 3, k: 2) }
        #expect(throws: CountOverflow.self) { _ = try AttentionCounts.expandedFlops(heads: 128, dq: 192, v: 128, nq: 100_000_000, nk: 100_000_000) }
        #expect(throws: CountOverflow.self) {
            _ = try FlopModel.prefill(config: Presets.deepseekV3, tp: 8, gate: .column, sequenceLengths: [Int.max])
        }
        #expect(throws: CountOverflow.self) {
            _ = try FlopModel.decode(config: Presets.deepseekV3, tp: 1, gate: .column, contexts: [Int.max], path: .naive)
        }
        #expect(throws: CountOverflow.self) { _ = try SeededInit.fill(name: "x", seed: 1, rows: 0..<big, cols: 0..<4, globalCols: 4, std: 1) }
        #expect(throws: CountOverflow.self) { _ = try Batch(sequenceLengths: [Int.max, 1]) }
        #expect(throws: CountOverflow.self) { try SizeBudget.planCounts(lengths: [big], config: Presets.tiny, tp: 1) }
        #expect(throws: CountOverflow.self) { _ = try SizeBudget.activationBytes(tokens: Int.max, config: Presets.tiny, tp: 1) }
        #expect(throws: CountOverflow.self) { _ = try SizeBudget.checkpoint(config: Presets.tiny, layers: big, bytesPerElement: 4) }
    }

    /// Memory: the ranks on one host multiply the per-rank need; the refusal names the size, the
    /// bytes, the limit and the largest value that fits (which itself fits, one more does not).
    @Test func memoryIsHeldAgainstEveryRankOnTheHost() throws {
        let machine = MachineCapacity(memoryBytes: 10_000_000_000) { _ in nil }
        let need = { (t: Int) throws(CountOverflow) -> SizeBudget.Need in
            try SizeBudget.forward(tokens: t, sequences: 1, config: Presets.deepseekV3, tp: 2, gate: .column, serving: false, check: false, output: false)
        }
        try SizeBudget(ranksOnHost: 1, machine: machine).require(.init("--tokens", 2000), need)
        var largest: [Int: Int] = [:]
        for ranks in [1, 2] {
            let budget = SizeBudget(ranksOnHost: ranks, machine: machine)
            let error = Self.refusal { try budget.require(.init("--tokens", 1_000_000), need) }
            guard case let .memory(size, needed, perRank, r, limit, _, most)? = error else {
                Issue.record("1,000,000 tokens fit \(ranks) ranks in 10 GB: \(String(describing: error))")
                continue
            }
            #expect(size.value == 1_000_000 && r == ranks && needed == ranks * perRank && limit == 8_000_000_000)
            let fit = try #require(most)
            #expect(try budget.hostBytes(need(fit)) <= limit && budget.hostBytes(need(fit + 1)) > limit)
            largest[ranks] = fit
        }
        #expect(largest.count == 2 && largest[2] ?? 0 < largest[1] ?? 0, "two ranks on a host fit fewer tokens: \(largest)")
        let text = "\(CapacityError.memory(size: .init("--tokens", 3_000_000_000), neededBytes: 1, perRankBytes: 1, ranks: 2, limitBytes: 1, machineBytes: 1, largest: 5))"
        #expect(text.contains("--tokens 3000000000") && text.contains("use at most 5"), "no 32-bit formatting: \(text)")
    }

    /// Overflow is refused with the largest size whose counts fit; unsearchable sizes say what to do.
    @Test func overflowIsRefusedWithTheLargestSizeThatFits() throws {
        let error = Self.refusal {
            try SizeBudget.requireCounts(.init("--tokens", Int.max)) { t throws(CountOverflow) in
                try SizeBudget.planCounts(lengths: [t], config: Presets.deepseekV3, tp: 8)
            }
        }
        guard case let .overflow(_, _, most)? = error else { Issue.record("Int.max tokens counted"); return }
        let fit = try #require(most)
        try SizeBudget.planCounts(lengths: [fit], config: Presets.deepseekV3, tp: 8)
        #expect(throws: CountOverflow.self) { try SizeBudget.planCounts(lengths: [fit + 1], config: Presets.deepseekV3, tp: 8) }
        #expect(SizeBudget.largest(upTo: Int.max) { $0 <= 41 } == 41 && SizeBudget.largest(upTo: 10) { _ in false } == nil)
    }

    /// Disk: a checkpoint larger than the free space of its filesystem is refused, with the
    /// largest layer count that fits.
    @Test func checkpointLargerThanTheFreeDiskIsRefused() throws {
        let budget = SizeBudget(ranksOnHost: 1, machine: MachineCapacity(memoryBytes: 1 << 40) { _ in 100_000_000 })
        let file = { (l: Int) throws(CountOverflow) -> Int in try SizeBudget.checkpoint(config: Presets.tiny, layers: l, bytesPerElement: 4).file }
        try budget.requireDisk(.init("--layers", 10), directory: "/x", file)
        let error = Self.refusal { try budget.requireDisk(.init("--layers", 1000), directory: "/x", file) }
        guard case let .disk(_, _, needed, free, most?)? = error else { Issue.record("\(String(describing: error))"); return }
        let fits = try file(most), over = try file(most + 1)
        #expect(needed > free && fits <= free && over > free)
    }

    /// The refusal `body` throws, or nil.
    static func refusal(_ body: () throws -> Void) -> CapacityError? {
        do { try body() } catch { return error as? CapacityError }
        return nil
    }

    /// config.json judged by key: a fraction where an integer belongs names the key; a key
    /// given twice is refused rather than resolved differently from HF.
    @Test func configNumbersAndDuplicatesNameTheKey() throws {
        let base = String(decoding: try JSONEncoder().encode(Presets.tiny), as: UTF8.self)
        let fraction = base.replacingOccurrences(of: "\"hidden_size\":256", with: "\"hidden_size\":256.5")
        #expect(fraction != base)
        #expect(throws: ConfigError.badValue(file: "c", key: "hidden_size", detail: "it must be an integer (no fraction, within 64 bits)")) {
            _ = try MLAConfig.decode(json: Data(fraction.utf8), file: "c")
        }
        let twice = "{\"hidden_size\": 1," + base.dropFirst()
        #expect(throws: ConfigError.duplicateKey(file: "c", key: "hidden_size")) { _ = try MLAConfig.decode(json: Data(twice.utf8), file: "c") }
    }

    /// A bf16 layer's workspace holds the expanded keys and values in 2 bytes plus one f32 block of
    /// `expandBlockRows` rows; everything else stays f32. The count follows the token count.
    @Test(arguments: [1, 64, 65, 256])
    func bf16ActivationsCountTheExpandedKeysAndValuesInTwoBytes(tokens T: Int) throws {
        for (c, tp) in [(Presets.tiny, 1), (Presets.deepseekV3, 2)] {
            let width = c.numAttentionHeads / tp * (c.qkNopeHeadDim + c.vHeadDim)
            let f32 = try SizeBudget.activationBytes(tokens: T, config: c, tp: tp)
            let bf16 = try SizeBudget.activationBytes(tokens: T, config: c, tp: tp, precision: .bf16)
            #expect(f32 - bf16 == 2 * T * width - 4 * min(T, MLAAttention.expandBlockRows) * width, "T=\(T) tp=\(tp)")
        }
    }
}
