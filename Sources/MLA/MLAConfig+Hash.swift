import Foundation

extension MLAConfig {
    /// A stable fingerprint of the config: FNV-1a 64 of its canonical JSON (sorted keys), in hex.
    /// Recorded in output files so a result can be matched to the config that produced it.
    public func hash() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in try encoder.encode(self) { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
        return String(h, radix: 16).leftPadded(to: 16)
    }
}

extension String {
    func leftPadded(to width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}
