import Foundation
import Testing
import SafeTensors

@Suite("Block reads")
struct BlockReadTests {
    /// A [6, 5] matrix whose element (r, c) is r·10 + c, stored as F32, F16 and BF16, plus a 1-D and a 3-D tensor.
    private static func makeFile(in directory: TemporaryDirectory) throws -> SafeTensorsFile {
        let matrix = (0..<6).flatMap { row in (0..<5).map { Float(row * 10 + $0) } }
        var writer = SafeTensorsWriter()
        try writer.add("m.f32", floats: matrix, shape: [6, 5], as: .F32)
        try writer.add("m.f16", floats: matrix, shape: [6, 5], as: .F16)
        try writer.add("m.bf16", floats: matrix, shape: [6, 5], as: .BF16)
        try writer.add("bias", floats: (0..<7).map(Float.init), shape: [7], as: .BF16)
        try writer.add("cube", floats: [Float](repeating: 1, count: 8), shape: [2, 2, 2])
        let path = directory.file("blocks.safetensors")
        try writer.write(to: path)
        return try SafeTensorsFile(path: path)
    }

    private static func expected(rows: Range<Int>, columns: Range<Int>) -> [Float] {
        rows.flatMap { row in columns.map { Float(row * 10 + $0) } }
    }

    @Test(arguments: [("m.f32", 4), ("m.f16", 2), ("m.bf16", 2)])
    func rowBlockReturnsThoseRowsAndCountsExactlyTheirBytes(name: String, elementSize: Int) throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let file = try Self.makeFile(in: directory)
        #expect(file.bytesRead == 0, "opening reads no tensor data")
        #expect(try file.readFloats(name, rows: 2..<4) == Self.expected(rows: 2..<4, columns: 0..<5))
        #expect(file.bytesRead == 2 * 5 * elementSize)
    }

    @Test(arguments: [("m.f32", 4), ("m.f16", 2), ("m.bf16", 2)])
    func columnBlockReturnsThoseColumnsAndCountsOnlyEachRowsSlice(name: String, elementSize: Int) throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let file = try Self.makeFile(in: directory)
        #expect(try file.readFloats(name, rows: 1..<5, columns: 2..<4) == Self.expected(rows: 1..<5, columns: 2..<4))
        #expect(file.bytesRead == 4 * 2 * elementSize)
        #expect(try file.readFloats(name, columns: 4..<5) == Self.expected(rows: 0..<6, columns: 4..<5))
        #expect(file.bytesRead == (8 + 6) * elementSize)
    }

    @Test func readingIntoCallerStorageFillsItRowMajor() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let file = try Self.makeFile(in: directory)
        var storage = [Float](repeating: .nan, count: 6)
        try storage.withUnsafeMutableBufferPointer { try file.readFloats("m.f32", rows: 3..<5, columns: 1..<4, into: $0) }
        #expect(storage == [31, 32, 33, 41, 42, 43])
        var wrong = [Float](repeating: 0, count: 5)
        let error = thrownError {
            try wrong.withUnsafeMutableBufferPointer { try file.readFloats("m.f32", rows: 3..<5, columns: 1..<4, into: $0) }
        }
        #expect(caseName(error) == "destinationSizeMismatch" && "\(error!)".contains("6"))
    }

    @Test func oneDimensionalTensorReadsElementRangesAsRows() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let file = try Self.makeFile(in: directory)
        #expect(try file.readFloats("bias", rows: 2..<5) == [2, 3, 4])
        #expect(file.bytesRead == 3 * 2)
        let error = thrownError { _ = try file.readFloats("bias", columns: 0..<1) }
        #expect(caseName(error) == "wrongRank" && "\(error!)".contains("[7]"))
    }

    @Test func wrongRankOutOfBoundsAndMissingTensorErrorsNameShapesTensorAndFile() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let file = try Self.makeFile(in: directory)
        let rank = thrownError { _ = try file.readFloats("cube") }
        #expect(caseName(rank) == "wrongRank")
        #expect("\(rank!)".contains("'cube'") && "\(rank!)".contains("[2, 2, 2]") && "\(rank!)".contains(file.path))
        let bounds = thrownError { _ = try file.readFloats("m.f32", rows: 4..<7, columns: 0..<2) }
        #expect(caseName(bounds) == "blockOutOfBounds")
        #expect("\(bounds!)".contains("[6, 5]") && "\(bounds!)".contains("[4, 7)") && "\(bounds!)".contains("'m.f32'"))
        let columns = thrownError { _ = try file.readFloats("m.f32", columns: 3..<6) }
        #expect(caseName(columns) == "blockOutOfBounds")
        let missing = thrownError { _ = try file.readFloats("nope.weight") }
        #expect(caseName(missing) == "tensorNotFound")
        #expect("\(missing!)".contains("'nope.weight'") && "\(missing!)".contains(file.path))
        #expect(file.bytesRead == 0, "failed reads count nothing")
    }

    @Test func rawBytesAccessCountsTheWholeTensor() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let file = try Self.makeFile(in: directory)
        let firstBF16 = try file.withRawBytes(of: "m.bf16") { UInt16($0[0]) | UInt16($0[1]) << 8 }
        #expect(firstBF16 == 0x0000)
        #expect(file.bytesRead == 30 * 2)
    }
}
