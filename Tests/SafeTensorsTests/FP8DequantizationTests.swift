import Foundation
import Testing
import SafeTensors

@Suite("FP8 block dequantization")
struct FP8DequantizationTests {
    /// Weight [5, 4] with block size 3: out and in are not multiples of the block, so the
    /// scale grid is [2, 2] and the last row/column blocks are partial.
    static let rows = 5, columns = 4, block = 3
    static let scales: [Float] = [2, 0.5, 4, 0.25]
    static func code(_ row: Int, _ column: Int) -> UInt8 { UInt8((row * columns + column) * 5 % 0x7E) }

    static func makeFile(in directory: TemporaryDirectory, scaleShape: [Int] = [2, 2]) throws -> SafeTensorsFile {
        var writer = SafeTensorsWriter()
        let codes = (0..<rows).flatMap { row in (0..<columns).map { code(row, $0) } }
        try writer.add("layers.0.attn.wkv_a.weight", dtype: .F8_E4M3, shape: [rows, columns], bytes: codes)
        try writer.add("layers.0.attn.wkv_a.weight_scale_inv", floats: scales, shape: scaleShape)
        let path = directory.file("fp8.safetensors")
        try writer.write(to: path)
        return try SafeTensorsFile(path: path)
    }

    static func expected(rows: Range<Int>, columns: Range<Int>) -> [Float] {
        rows.flatMap { row in
            columns.map { column in
                ScalarConversion.fp8E4M3ToFloat(code(row, column)) * scales[(row / block) * 2 + column / block]
            }
        }
    }

    @Test func scaleNameDropsTheWeightSuffix() {
        #expect(FP8BlockDequantizer.scaleName(forWeight: "a.b.weight") == "a.b.weight_scale_inv")
        #expect(FP8BlockDequantizer.scaleName(forWeight: "a.b") == "a.b.weight_scale_inv")
    }

    @Test func wholeWeightMultipliesEachCodeByItsBlockScale() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let file = try Self.makeFile(in: directory)
        let values = try file.readDequantizedFP8("layers.0.attn.wkv_a.weight", blockSize: 3)
        #expect(values == Self.expected(rows: 0..<5, columns: 0..<4))
        #expect(file.bytesRead == 5 * 4 + 4 * 4)
    }

    @Test func blockStraddlingScaleBoundariesReadsOnlyItsBytesAndScales() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let file = try Self.makeFile(in: directory)
        let values = try file.readDequantizedFP8("layers.0.attn.wkv_a.weight", rows: 2..<5, columns: 1..<4, blockSize: 3)
        #expect(values == Self.expected(rows: 2..<5, columns: 1..<4))
        #expect(file.bytesRead == 3 * 3 + 2 * 2 * 4, "9 FP8 bytes plus the 2×2 scales covering them")
    }

    /// The stored form an fp8 model holds: the block's own bytes and the scales of the tiles it
    /// touches, read without dequantizing.
    @Test func storedBlockIsItsBytesAndTheScalesOfTheTilesItTouches() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let file = try Self.makeFile(in: directory)
        let name = "layers.0.attn.wkv_a.weight"
        let stored = try FP8BlockDequantizer.stored(weightFile: file, name: name, scaleFile: file, scaleName: name + "_scale_inv",
                                                    rows: 2..<5, columns: 1..<3, blockSize: 3)
        #expect(stored.bytes == (2..<5).flatMap { r in (1..<3).map { Self.code(r, $0) } })
        #expect(stored.scales == [2, 4] && stored.scaleRows == 0..<2 && stored.scaleColumns == 0..<1)
        #expect(file.bytesRead == 3 * 2 + 2 * 4, "6 fp8 bytes and the two scales of the tiles they touch")
    }

    @Test func blockInsideOneScaleBlockReadsOneScale() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let file = try Self.makeFile(in: directory)
        let values = try file.readDequantizedFP8("layers.0.attn.wkv_a.weight", rows: 3..<5, columns: 3..<4, blockSize: 3)
        #expect(values == Self.expected(rows: 3..<5, columns: 3..<4))
        #expect(file.bytesRead == 2 + 4)
    }

    @Test func scaleGridThatDoesNotMatchTheBlockSizeIsAnError() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let file = try Self.makeFile(in: directory)
        let error = thrownError { _ = try file.readDequantizedFP8("layers.0.attn.wkv_a.weight", blockSize: 2) }
        #expect(caseName(error) == "scaleShapeMismatch")
        #expect("\(error!)".contains("[3, 2]") && "\(error!)".contains("[2, 2]") && "\(error!)".contains("block size 2"))
        #expect(caseName(thrownError { _ = try file.readDequantizedFP8("layers.0.attn.wkv_a.weight", blockSize: 0) })
            == "invalidBlockSize")
    }

    @Test func dequantizingANonFP8TensorIsAnError() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let file = try Self.makeFile(in: directory)
        let error = thrownError { _ = try file.readDequantizedFP8("layers.0.attn.wkv_a.weight_scale_inv", blockSize: 3) }
        #expect(caseName(error) == "unsupportedDType" && "\(error!)".contains("F32"))
    }
}
