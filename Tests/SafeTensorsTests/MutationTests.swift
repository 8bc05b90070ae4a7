import Foundation
import Testing
import SafeTensors

/// Deterministic mutation fuzzing of the pure header parser: every mutated input must
/// either parse into a self-consistent header or throw a ``SafeTensorsHeaderError`` — never trap.
@Suite("Mutation robustness")
struct MutationTests {
    static let fileName = "mutated.safetensors"

    static func seedFile() throws -> [UInt8] {
        var writer = SafeTensorsWriter(metadata: ["format": "pt", "step": "12"])
        try writer.add("layers.0.attn.wq_a.weight", floats: (0..<24).map(Float.init), shape: [4, 6], as: .BF16)
        try writer.add("layers.0.attn.wq_a.weight_scale_inv", floats: [0.5, 2], shape: [1, 2])
        try writer.add("layers.0.attn.wkv_a.weight", dtype: .F8_E4M3, shape: [3, 4], bytes: (0..<12).map(UInt8.init))
        try writer.add("cu_seqlens", ints: [0, 3, 7], shape: [3], as: .I64)
        try writer.add("norm", floats: [1, 2, 3], shape: [3], as: .F16)
        return writer.serialized()
    }

    static let numberTokens = ["-1", "1e300", "2.5", "NaN", "Infinity", "true", "false", "null", "-0", "0x10", "1E2",
                               "99999999999999999999", "18446744073709551616", "9223372036854775807",
                               "4611686018427387904", "[]", "{}", "\"7\"", "", "00", "1.", "-"]
    static let stringTokens = ["", "F4", "F64", "BOOL", "__metadata__", "\\ud800", "\\u0000", "\\uDBFF\\uDFFF",
                               "a\\\"b", "\u{1}", "dtype", "shape", "data_offsets"]
    static let interestingBytes: [UInt8] = [0, 0xFF, 0x7F, 0x80, 0xC3, 0x22, 0x7B, 0x7D, 0x5B, 0x5D, 0x2C, 0x3A,
                                            0x2D, 0x30, 0x39, 0x65, 0x2E, 0x5C, 0x20]

    /// Applies one random mutation; header splices usually fix up the length prefix so the JSON is reached.
    static func mutate(_ input: [UInt8], using generator: inout SeededGenerator) -> [UInt8] {
        var bytes = input
        let headerLength = bytes.count >= 8 ? Int(min(bytes[0..<8].reversed().reduce(0) { $0 << 8 | UInt64($1) },
                                                      UInt64(bytes.count))) : 0
        let headerRange = 8..<max(8, min(bytes.count, 8 + headerLength))
        func splice(_ range: Range<Int>, with replacement: [UInt8]) {
            bytes.replaceSubrange(range, with: replacement)
            if Int.random(in: 0..<10, using: &generator) > 0, bytes.count >= 8 {
                let newLength = UInt64(max(0, headerLength + replacement.count - range.count))
                withUnsafeBytes(of: newLength.littleEndian) { bytes.replaceSubrange(0..<8, with: $0) }
            }
        }
        switch Int.random(in: 0..<7, using: &generator) {
        case 0 where !bytes.isEmpty:
            for _ in 0..<Int.random(in: 1...4, using: &generator) {
                bytes[Int.random(in: 0..<bytes.count, using: &generator)] ^= 1 << UInt8.random(in: 0..<8, using: &generator)
            }
        case 1 where !bytes.isEmpty:
            bytes[Int.random(in: 0..<bytes.count, using: &generator)] = interestingBytes.randomElement(using: &generator)!
        case 2:
            bytes = Array(bytes.prefix(Int.random(in: 0...bytes.count, using: &generator)))
        case 3 where bytes.count >= 8:
            let choices: [UInt64] = [0, 1, UInt64(headerLength) &- 1, UInt64(headerLength) + 1, UInt64(headerLength) + 8,
                                     .max, 100 << 20, (100 << 20) + 1, UInt64(bytes.count), UInt64(bytes.count - 7),
                                     UInt64.random(in: 0...UInt64.max, using: &generator)]
            withUnsafeBytes(of: choices.randomElement(using: &generator)!.littleEndian) { bytes.replaceSubrange(0..<8, with: $0) }
        case 4 where !headerRange.isEmpty:
            let digits = headerRange.filter { (0x30...0x39).contains(bytes[$0]) }
            guard let start = digits.randomElement(using: &generator) else { break }
            var end = start
            while end < headerRange.upperBound, (0x30...0x39).contains(bytes[end]) { end += 1 }
            splice(start..<end, with: Array(numberTokens.randomElement(using: &generator)!.utf8))
        case 5 where !headerRange.isEmpty:
            let quotes = headerRange.filter { bytes[$0] == 0x22 }
            guard quotes.count >= 2 else { break }
            let pair = Int.random(in: 0..<(quotes.count / 2), using: &generator) * 2
            var token = Array(stringTokens.randomElement(using: &generator)!.utf8)
            if Bool.random(using: &generator) { token.append(interestingBytes.randomElement(using: &generator)!) }
            splice((quotes[pair] + 1)..<quotes[pair + 1], with: token)
        case 6 where headerRange.count > 2:
            let start = Int.random(in: headerRange, using: &generator)
            let end = min(headerRange.upperBound, start + Int.random(in: 1...24, using: &generator))
            splice(start..<end, with: Bool.random(using: &generator) ? [] : Array(bytes[start..<end] + bytes[start..<end]))
        default:
            bytes.append(UInt8.random(in: 0...255, using: &generator))
        }
        return bytes
    }

    @Test func threeThousandSeededMutationsEitherParseConsistentlyOrThrowHeaderErrors() throws {
        let seed = try Self.seedFile()
        var generator = SeededGenerator(seed: 0x5AFE_7E45)
        var parsed = 0, rejected = 0
        var casesSeen = Set<String>()
        var problems: [String] = []
        for iteration in 0..<3000 {
            var bytes = seed
            for _ in 0..<Int.random(in: 1...3, using: &generator) { bytes = Self.mutate(bytes, using: &generator) }
            do {
                let header = try SafeTensorsHeader.parse(bytes: bytes, fileName: Self.fileName)
                parsed += 1
                for info in header.tensors.values where header.dataOffset + info.byteRange.upperBound > bytes.count {
                    problems.append("#\(iteration): accepted '\(info.name)' beyond the end of the file")
                }
            } catch let error as SafeTensorsHeaderError {
                rejected += 1
                casesSeen.insert(caseName(error) ?? "?")
                if !error.description.contains(Self.fileName) { problems.append("#\(iteration): \(error) lacks the file name") }
            } catch {
                problems.append("#\(iteration): unexpected error type \(type(of: error))")
            }
        }
        #expect(problems.isEmpty, "\(problems.prefix(5))")
        #expect(parsed > 0 && rejected > 0, "parsed \(parsed), rejected \(rejected)")
        #expect(casesSeen.count >= 8, "mutations should reach most rules; saw \(casesSeen.sorted())")
    }

    @Test func mutatedFilesThatParseCanBeReadWithoutTrapping() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let seed = try Self.seedFile()
        var generator = SeededGenerator(seed: 42)
        var opened = 0
        for iteration in 0..<400 {
            let bytes = Self.mutate(seed, using: &generator)
            guard (try? SafeTensorsHeader.parse(bytes: bytes, fileName: Self.fileName)) != nil else { continue }
            let path = directory.file("m\(iteration).safetensors")
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            let file = try SafeTensorsFile(path: path)
            opened += 1
            for name in file.tensorNames {
                _ = try? file.readFloats(name)
                _ = try? file.readInts(name)
                _ = try? file.readDequantizedFP8(name, blockSize: 4)
            }
        }
        #expect(opened > 0)
    }
}
