import Foundation
import TensorCore
import Testing

@Suite struct MatrixStorageTests {
    /// Large enough to be advised onto huge pages (≥ 4 MiB) and not a whole number of pages.
    @Test func fillingInitKeepsEveryValueItsBodyWrites() {
        let rows = 1031, cols = 1027
        let m = Matrix(rows: rows, cols: cols) { out in
            for i in 0..<out.count { out[i] = Float(i % 4093) }
        }
        #expect(m.shape == [rows, cols] && m.count == rows * cols)
        #expect(m[0, 0] == 0 && m[rows - 1, cols - 1] == Float((rows * cols - 1) % 4093))
        #expect((0..<m.count).allSatisfy { m.storage[$0] == Float($0 % 4093) })
    }

    @Test func transposeOfAHugePageMatrixSwapsEveryIndex() {
        let m = Matrix(rows: 700, cols: 1800) { out in for i in 0..<out.count { out[i] = Float(i) } }
        let t = m.transposed()
        #expect(t.shape == [1800, 700])
        #expect(t[1799, 699] == m[699, 1799] && t[5, 3] == m[3, 5] && t[0, 699] == m[699, 0])
    }

    /// Buffers below the threshold are never advised; a weight-sized one that starts off a page
    /// boundary is advised on its whole pages only, and its first partial page keeps its flags.
    @Test func adviceCoversOnlyWholePagesOfLargeBuffers() throws {
        guard FileManager.default.fileExists(atPath: "/sys/kernel/mm/transparent_hugepage/enabled") else { return }
        let pages = 4096
        for (count, advised) in [(1023, false), (HugePages.threshold / 4 - 1, false), (HugePages.threshold / 4 + 5 * pages, true)] {
            // Its own mapping, page-aligned, so that nothing else shares its flags.
            let bytes = (count + 1) * 4 + pages
            let raw = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
            let base = try #require(raw == MAP_FAILED ? nil : raw)
            defer { munmap(base, bytes) }
            let view = UnsafeMutableBufferPointer(start: base.assumingMemoryBound(to: Float.self) + 1, count: count)   // 4 bytes off the boundary
            HugePages.advise(view)
            let start = Int(bitPattern: base)
            let inner = try #require(Self.vmFlags(at: start + 2 * pages), "no smaps entry")
            let first = try #require(Self.vmFlags(at: start), "no smaps entry")
            #expect(inner.contains("hg") == advised, "\(count) floats: VmFlags \(inner)")
            #expect(!first.contains("hg"), "\(count) floats: the partial first page was advised: \(first)")
        }
    }

    /// The kernel's flags for the mapping that holds `address` (`VmFlags` of /proc/self/smaps).
    static func vmFlags(at address: Int) -> [String]? {
        // Read to the end (proc files report size 0, so size-based reads see nothing).
        guard let data = FileHandle(forReadingAtPath: "/proc/self/smaps")?.readDataToEndOfFile(),
              let smaps = String(data: data, encoding: .utf8) else { return nil }
        var inside = false
        for line in smaps.split(separator: "\n") {
            let fields = line.split(separator: " ")
            if let range = fields.first, range.contains("-"), fields.count >= 5 {
                let bounds = range.split(separator: "-").compactMap { Int($0, radix: 16) }
                inside = bounds.count == 2 && (bounds[0]..<bounds[1]).contains(address)
            } else if inside, line.hasPrefix("VmFlags:") {
                return fields.dropFirst().map(String.init)
            }
        }
        return nil
    }

    /// A weight-sized matrix built through `filling` is advised `MADV_HUGEPAGE` ("hg" among its
    /// mapping's flags) wherever the kernel has transparent huge pages at all.
    @Test func weightSizedMatrixIsAdvisedOntoHugePages() throws {
        guard FileManager.default.fileExists(atPath: "/sys/kernel/mm/transparent_hugepage/enabled") else { return }
        let m = Matrix(rows: 2048, cols: 1024) { out in for i in 0..<out.count { out[i] = 1 } }      // 8 MiB
        let middle = m.storage.withUnsafeBufferPointer { Int(bitPattern: $0.baseAddress!) + $0.count * 2 }
        let flags = try #require(withExtendedLifetime(m) { Self.vmFlags(at: middle) }, "no smaps entry holds the matrix")
        #expect(flags.contains("hg"), "VmFlags \(flags)")
        let small = Matrix(rows: 16, cols: 16) { out in for i in 0..<out.count { out[i] = 1 } }
        #expect(small.count == 256)
    }
}
