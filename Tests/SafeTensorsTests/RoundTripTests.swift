import Foundation
import Testing
import SafeTensors

@Suite("Writer → reader round trip")
struct RoundTripTests {
    @Test func everyWritableDTypeAndTheMetadataRoundTrip() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let floats: [Float] = [1, -2, 0.5, 57344, -0.0, 3.25]  // exact in both F16 and BF16
        var writer = SafeTensorsWriter(metadata: ["format": "pt", "note": "quote \" and \\ and\nnewline"])
        try writer.add("f32", floats: [1.1, -2.2, .infinity, 0x1p-140, 0, 3], shape: [2, 3], as: .F32)
        try writer.add("f16", floats: floats, shape: [3, 2], as: .F16)
        try writer.add("bf16", floats: floats, shape: [6], as: .BF16)
        try writer.add("i64", ints: [0, -1, Int(Int64.max), 42], shape: [2, 2], as: .I64)
        try writer.add("i32", ints: [0, 7, -7, Int(Int32.min)], shape: [4], as: .I32)
        try writer.add("fp8", dtype: .F8_E4M3, shape: [2, 2], bytes: [0x38, 0x01, 0x7E, 0x80])
        try writer.add("empty", floats: [], shape: [0, 5], as: .F32)
        let path = directory.file("model.safetensors")
        try writer.write(to: path)

        let file = try SafeTensorsFile(path: path)
        #expect(file.metadata == writer.metadata)
        #expect(file.tensorNames == ["bf16", "empty", "f16", "f32", "fp8", "i32", "i64"])
        #expect(file.tensors["f16"]?.shape == [3, 2])
        #expect(try file.readFloats("f32") == [1.1, -2.2, .infinity, 0x1p-140, 0, 3])
        #expect(try file.readFloats("f16") == floats)
        #expect(try file.readFloats("bf16") == floats)
        #expect(try file.readFloats("fp8") == [1, 0x1p-9, 448, -0.0])
        #expect(try file.readFloats("empty") == [])
        #expect(try file.readInts("i64") == [0, -1, Int(Int64.max), 42])
        #expect(try file.readInts("i32") == [0, 7, -7, Int(Int32.min)])
    }

    @Test func headerIsSortedPaddedToEightBytesWithContiguousOffsets() throws {
        var writer = SafeTensorsWriter()
        try writer.add("b", floats: [1, 2, 3], shape: [3])
        try writer.add("a", ints: [5], shape: [1], as: .I32)
        let bytes = writer.serialized()
        let headerLength = Int(bytes[0]) | Int(bytes[1]) << 8
        #expect(headerLength % 8 == 0)
        let json = String(decoding: bytes[8..<(8 + headerLength)], as: UTF8.self)
        #expect(json.hasPrefix(#"{"a":{"dtype":"I32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[3],"data_offsets":[4,16]}}"#))
        let padding = json.reversed().prefix(while: { $0 == " " }).count
        #expect(padding < 8 && json.dropLast(padding).hasSuffix("}"), "padded with spaces only")
        let parsed = try SafeTensorsHeader.parse(bytes: bytes, fileName: "memory")
        #expect(parsed.tensors["b"]?.byteRange == 4..<16)
        #expect(bytes.count == 8 + headerLength + 16)
    }

    @Test func writerRejectsBadInputWithExplainingErrors() {
        var writer = SafeTensorsWriter()
        let mismatch = thrownError { try writer.add("w", dtype: .F32, shape: [2, 2], bytes: [0, 0, 0, 0]) }
        #expect(caseName(mismatch) == "byteCountMismatch")
        #expect("\(mismatch!)".contains("16 bytes") && "\(mismatch!)".contains("4 bytes"))
        #expect(caseName(thrownError { try writer.add("w", floats: [1], shape: [1], as: .I32) }) == "unsupportedDType")
        #expect(caseName(thrownError { try writer.add("w", ints: [1 << 40], shape: [1], as: .I32) }) == "integerOutOfRange")
        #expect(caseName(thrownError { try writer.add("w", floats: [1], shape: [-1]) }) == "invalidShape")
        #expect(caseName(thrownError { try writer.add("__metadata__", floats: [1], shape: [1]) }) == "invalidName")
        #expect(throws: Never.self) { try writer.add("w", floats: [1], shape: [1]) }
        #expect(caseName(thrownError { try writer.add("w", floats: [1], shape: [1]) }) == "duplicateTensor")
    }

    @Test func readingIntsFromAFloatTensorAndFloatsFromAnIntTensorAreErrors() throws {
        var writer = SafeTensorsWriter()
        try writer.add("f", floats: [1], shape: [1])
        try writer.add("i", ints: [1], shape: [1])
        try writer.add("u8", dtype: .U8, shape: [1], bytes: [1])
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try writer.write(to: directory.file("x.safetensors"))
        let file = try SafeTensorsFile(path: directory.file("x.safetensors"))
        let intError = thrownError { _ = try file.readInts("f") }
        #expect(caseName(intError) == "unsupportedDType" && "\(intError!)".contains("F32"))
        let floatError = thrownError { _ = try file.readFloats("u8") }
        #expect(caseName(floatError) == "unsupportedDType" && "\(floatError!)".contains("U8"))
        #expect(caseName(thrownError { _ = try file.readFloats("i") }) == "unsupportedDType")
    }

    @Test func openingMissingOrCorruptFilesGivesErrorsNamingThePath() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let missing = directory.file("nope.safetensors")
        let openError = thrownError { _ = try SafeTensorsFile(path: missing) }
        #expect(caseName(openError) == "cannotOpen" && "\(openError!)".contains(missing))
        let empty = directory.file("empty.safetensors")
        _ = FileManager.default.createFile(atPath: empty, contents: Data())
        #expect(caseName(thrownError { _ = try SafeTensorsFile(path: empty) }) == "fileTooShort")
        // A directory is refused by kind before it is read (RegularFile), its path named.
        let dirError = thrownError { _ = try SafeTensorsFile(path: directory.path) } as? InputFileError
        #expect(dirError?.problem == .notRegular(kind: "a directory") && "\(dirError!)".contains(directory.path))
    }
}
