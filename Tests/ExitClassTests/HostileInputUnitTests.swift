import ExitClass
import Planner
import TensorCore
import TensorParallel
import Testing

/// The third round's fixes that need no process: how outside text is shown, the kernel
/// libraries' limits, layout names and lists, and the disk message at the smallest size.
struct HostileInputUnitTests {
    @Test func everyControlCharacterIsEscapedAndNothingElse() {
        #expect(OutsideText.escaped("a\u{1B}[2J\nb\tc\r\u{7F}\u{85}\u{2028}\u{202E}d") == "a\\u{1B}[2J\\nb\\tc\\r\\u{7F}\\u{85}\\u{2028}\\u{202E}d")
        #expect(OutsideText.escaped("tp=8 — µs ü █ 中") == "tp=8 — µs ü █ 中")
        #expect(OutsideText.escapedKeepingLines("a\u{1B}\nb") == "a\\u{1B}\nb")
    }

    @Test(arguments: [("OMP_NUM_THREADS", "100000"), ("OMP_NUM_THREADS", "0"), ("OMP_NUM_THREADS", ""), ("OPENBLAS_NUM_THREADS", "-1"),
                      ("OPENBLAS_NUM_THREADS", "x"), ("OMP_NUM_THREADS", "2,99999")])
    func aThreadCountOutsideOneToTheLimitIsRefused(variable: String, value: String) {
        #expect(throws: KernelLimitError.threads(variable: variable, value: value, most: 16, cores: 2)) {
            try KernelLimits.check(environment: [variable: value], cores: 2, addressSpaceBytes: nil)
        }
    }

    @Test func threadCountsWithinTheLimitAndNoLimitsPass() throws {
        try KernelLimits.check(environment: ["OMP_NUM_THREADS": "16", "OPENBLAS_NUM_THREADS": "1"], cores: 2, addressSpaceBytes: nil)
        try KernelLimits.check(environment: ["OMP_NUM_THREADS": "4,2"], cores: 2, addressSpaceBytes: 4 << 30)
    }

    @Test func anAddressSpaceLimitBelowTheLibrariesIsRefusedNamingIt() {
        #expect(throws: KernelLimitError.addressSpace(bytes: 200_000 << 10, minimum: KernelLimits.minAddressSpaceBytes)) {
            try KernelLimits.check(environment: [:], cores: 2, addressSpaceBytes: 200_000 << 10)
        }
        #expect(KernelLimitError.addressSpace(bytes: 200_000 << 10, minimum: 1 << 30).description.contains("200000 KiB"))
    }

    @Test(arguments: ["", ",", "tp4,", ",tp4", "tp4,,dp4"])
    func aLayoutListWithAnEmptyNameIsRefused(list: String) {
        #expect(throws: LayoutError.emptyName(list: list)) { try ParallelLayout.list(list, ranks: 4) }
    }

    @Test func layoutNamesAreJudgedAsNames() throws {
        #expect(try ParallelLayout.list("tp4, dp2xtp2,dp4,tp4-dcp2", ranks: 4).map(\.description) == ["tp4", "dp2xtp2", "dp4", "tp4-dcp2"])
        #expect(throws: LayoutError.ranksMismatch(name: "dp3xtp3", dp: 3, tp: 3, ranks: 4)) { try ParallelLayout(name: "dp3xtp3", ranks: 4) }
        #expect(throws: LayoutError.dpInName(name: "dp3", dp: 3, ranks: 4)) { try ParallelLayout(name: "dp3", ranks: 4) }
        #expect(throws: LayoutError.dcpInName(name: "tp4-dcp3", dcp: 3, tp: 4)) { try ParallelLayout(name: "tp4-dcp3", ranks: 4) }
        #expect(throws: LayoutError.badName("dp0")) { try ParallelLayout(name: "dp0", ranks: 4) }
        let huge = LayoutError.ranksMismatch(name: "dp4611686018427387904xtp4", dp: 1 << 62, tp: 4, ranks: 4).description
        #expect(huge.contains("more than") && huge.contains(" — "))
        #expect(LayoutError.badName("TP8").description.contains(" — "))
    }

    /// A one-layer checkpoint on a full filesystem: its size in a unit that shows it, and no
    /// "use a smaller --layers" at --layers 1.
    @Test func theDiskMessageShowsSmallSizesAndNoSmallerValueAtTheSmallest() {
        let text = CapacityError.disk(size: .init("--layers", 1), directory: "/x", neededBytes: 83_000, freeBytes: 0, largest: nil).description
        #expect(text.contains("83.0 kB") && !text.contains("0.0 GB") && !text.contains("smaller --layers") && text.contains("free space"), "\(text)")
    }
}
