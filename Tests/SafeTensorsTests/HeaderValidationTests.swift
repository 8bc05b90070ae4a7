import Testing
import SafeTensors

/// One test per header rule: each hand-crafts bytes violating exactly that rule and
/// checks the error case and that the message names the file (and tensor).
@Suite("Header validation")
struct HeaderValidationTests {
    let file = "ckpt/bad-shard.safetensors"

    private func expectError(_ bytes: [UInt8], case expected: String, mentions: [String] = [],
                             sourceLocation: SourceLocation = #_sourceLocation) {
        let error = headerError(bytes, file: file)
        #expect(caseName(error) == expected, "got \(String(describing: error))", sourceLocation: sourceLocation)
        let message = error?.description ?? ""
        for word in [file] + mentions {
            #expect(message.contains(word), "message should mention '\(word)': \(message)", sourceLocation: sourceLocation)
        }
    }

    @Test func validHeaderParsesTensorsMetadataAndDataOffset() throws {
        let header = #"{"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}"#
        let parsed = try SafeTensorsHeader.parse(bytes: craftFile(header: header, dataBytes: 16), fileName: file)
        #expect(parsed.metadata == ["format": "pt"])
        #expect(parsed.tensors["w"] == TensorInfo(name: "w", dtype: .F32, shape: [2, 2], byteRange: 0..<16))
        #expect(parsed.dataOffset == 8 + header.utf8.count)
    }

    @Test func fileShorterThanEightBytesIsRejected() {
        expectError([1, 0, 0, 0, 0], case: "fileTooShort", mentions: ["5 bytes"])
    }

    @Test func headerLengthBeyondFileSizeIsRejected() {
        expectError(craftFile(header: "{}", lengthOverride: 9_999_999), case: "headerLengthExceedsFile",
                    mentions: ["9999999", "10"])
    }

    @Test func headerLengthAbove100MiBIsRejected() {
        expectError(craftFile(header: "{}", lengthOverride: 9_999_999_999), case: "headerLengthExceedsLimit",
                    mentions: ["9999999999", "104857600"])
    }

    @Test func malformedJSONIsRejected() {
        expectError(craftFile(header: #"{"w": {"dtype": "F32""#), case: "malformedJSON")
        expectError(craftFile(header: #"{"w": NaN}"#), case: "malformedJSON")
        expectError(craftFile(header: "{\"\u{1}\": 1}"), case: "malformedJSON")
        var nonUTF8 = craftFile(header: #"{"wX": {}}"#)
        nonUTF8[11] = 0xFF
        expectError(nonUTF8, case: "malformedJSON")
        expectError(craftFile(header: String(repeating: "[", count: 100_000)), case: "malformedJSON")
        let duplicate = #"{"w":{"dtype":"F32","shape":[],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}"#
        expectError(craftFile(header: duplicate, dataBytes: 4), case: "malformedJSON", mentions: ["duplicate"])
    }

    @Test func headerThatIsNotAnObjectIsRejected() {
        expectError(craftFile(header: "[1, 2]"), case: "headerNotAnObject", mentions: ["an array"])
    }

    @Test(arguments: [
        (#"{"dtype":"F32","shape":[1]}"#, "data_offsets"),
        (#"{"shape":[1],"data_offsets":[0,4]}"#, "dtype"),
        (#"{"dtype":"F32","data_offsets":[0,4]}"#, "shape"),
        (#"{"dtype":4,"shape":[1],"data_offsets":[0,4]}"#, "dtype"),
        (#"{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}"#, "-1"),
        (#"{"dtype":"F32","shape":[2.5],"data_offsets":[0,4]}"#, "2.5"),
        (#"{"dtype":"F32","shape":[1e300],"data_offsets":[0,4]}"#, "1e300"),
        (#"{"dtype":"F32","shape":[true],"data_offsets":[0,4]}"#, "true"),
        (#"{"dtype":"F32","shape":[99999999999999999999],"data_offsets":[0,4]}"#, "99999999999999999999"),
        (#"{"dtype":"F32","shape":1,"data_offsets":[0,4]}"#, "shape"),
        (#"{"dtype":"F32","shape":[1],"data_offsets":[4,0]}"#, "begin 4 is greater than end 0"),
        (#"{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}"#, "data_offsets"),
        (#"{"dtype":"F32","shape":[1],"data_offsets":[0,"4"]}"#, "data_offsets"),
        (#"[1]"#, "not an object"),
    ])
    func entryOfWrongShapeIsRejected(entry: String, detail: String) {
        expectError(craftFile(header: #"{"bad.tensor":"# + entry + "}", dataBytes: 8),
                    case: "malformedEntry", mentions: ["bad.tensor", detail])
    }

    @Test func metadataThatIsNotStringToStringIsRejected() {
        expectError(craftFile(header: #"{"__metadata__":{"step":1}}"#), case: "malformedMetadata", mentions: ["step"])
        expectError(craftFile(header: #"{"__metadata__":["a"]}"#), case: "malformedMetadata", mentions: ["an array"])
    }

    @Test func offsetsPastTheDataSectionAreRejected() {
        let header = #"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#
        expectError(craftFile(header: header, dataBytes: 12), case: "offsetsOutOfBounds", mentions: ["'w'", "16", "12"])
    }

    @Test func overlappingTensorsAreRejectedNamingBoth() {
        let header = #"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"# +
            #""b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}}"#
        expectError(craftFile(header: header, dataBytes: 24), case: "overlappingTensors", mentions: ["'a'", "'b'"])
    }

    @Test func adjacentAndEmptyTensorsDoNotCountAsOverlapping() throws {
        let header = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"# +
            #""e":{"dtype":"F32","shape":[0,3],"data_offsets":[4,4]},"# +
            #""b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}"#
        let parsed = try SafeTensorsHeader.parse(bytes: craftFile(header: header, dataBytes: 16), fileName: file)
        #expect(parsed.tensors.count == 3)
    }

    @Test func byteCountDifferentFromShapeTimesDTypeSizeIsRejected() {
        let header = #"{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}}"#
        expectError(craftFile(header: header, dataBytes: 16), case: "byteCountMismatch",
                    mentions: ["'w'", "[2, 2]", "16 bytes", "12 bytes"])
    }

    @Test func shapeWhoseProductOverflowsIsRejected() {
        let header = #"{"w":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,16]}}"#
        expectError(craftFile(header: header, dataBytes: 16), case: "shapeOverflow", mentions: ["'w'", "4611686018427387904"])
    }

    @Test func unknownDTypeIsRejectedListingSupportedOnes() {
        let header = #"{"w":{"dtype":"Q4_K","shape":[1],"data_offsets":[0,1]}}"#
        expectError(craftFile(header: header, dataBytes: 1), case: "unknownDType", mentions: ["'w'", "Q4_K", "BF16", "F8_E4M3"])
    }

    @Test func bytesShorterThanTheDeclaredHeaderAreRejectedEvenIfFileSizeIsLarger() {
        let bytes = craftFile(header: #"{"w":{}}"#)
        let error = thrownError { _ = try SafeTensorsHeader.parse(bytes: Array(bytes.prefix(10)), fileSize: 1000, fileName: file) }
        #expect(caseName(error) == "headerLengthExceedsFile")
    }
}
