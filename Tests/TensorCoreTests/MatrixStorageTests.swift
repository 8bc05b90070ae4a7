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

    @Test func adviceOnSmallOrUnalignedBuffersChangesNothing() {
        for count in [0, 1, 1023, (4 << 20) / 4 + 3] {
            let p = UnsafeMutableBufferPointer<Float>.allocate(capacity: count + 1)
            defer { p.deallocate() }
            let view = UnsafeMutableBufferPointer(rebasing: p[1...])          // 4 bytes off any page boundary
            HugePages.advise(view)
            for i in view.indices { view[i] = 2 }
            #expect(view.allSatisfy { $0 == 2 })
        }
    }
}
