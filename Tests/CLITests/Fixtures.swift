import Foundation
import SafeTensors

/// Paths and scratch directories for the CLI tests.
enum Fixtures {
    static let golden = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures/golden")

    static func golden(_ name: String) -> String { golden.appendingPathComponent(name).path }

    /// The test process's own folder for scratch directories, `mlatp-tests-PID`: removed when
    /// the process exits, and, when a run was killed before it could, by the next run.
    static let scratchRoot: URL = {
        let tmp = FileManager.default.temporaryDirectory
        let prefix = "mlatp-tests-"
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: tmp.path)) ?? [] where entry.hasPrefix(prefix) {
            if let pid = Int32(entry.dropFirst(prefix.count)), kill(pid, 0) != 0 { try? FileManager.default.removeItem(at: tmp.appendingPathComponent(entry)) }
        }
        let root = tmp.appendingPathComponent(prefix + "\(getpid())")
        try? FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        atexit { try? FileManager.default.removeItem(at: Fixtures.scratchRoot) }
        return root
    }()

    /// A fresh scratch directory, under `scratchRoot`.
    static func scratch(_ tag: String) throws -> URL {
        let url = scratchRoot.appendingPathComponent("mlatp-\(tag)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// A copy of a golden case in a scratch directory, to corrupt.
    static func copyOfGolden(_ name: String) throws -> URL {
        let dir = try scratch(name)
        for file in try FileManager.default.contentsOfDirectory(atPath: golden(name)) {
            try FileManager.default.copyItem(atPath: golden(name) + "/" + file, toPath: dir.appendingPathComponent(file).path)
        }
        return dir
    }

    /// `attn_output` of a safetensors file as floats.
    static func output(_ path: String) throws -> [Float] {
        try SafeTensorsFile(path: path).readFloats("attn_output")
    }

    /// The output written at `path` against golden case `name`'s expected output (its f32 file,
    /// else its float64 one): nil when the shapes differ, else max |Δ| relative to the largest value.
    static func goldenError(_ name: String, output path: String) throws -> Float? {
        let dir = golden(name), f32 = dir + "/expected.safetensors"
        let expected = try SafeTensorsFile(path: FileManager.default.fileExists(atPath: f32) ? f32 : dir + "/expected_f64.safetensors")
            .readFloats("attn_output")
        let got = try output(path), scale = expected.map(abs).max() ?? 1
        guard got.count == expected.count else { return nil }
        return (zip(got, expected).map { abs($0 - $1) }.max() ?? .infinity) / scale
    }

    /// A safetensors file's header as JSON and its data section.
    static func split(_ data: Data) -> (header: [String: Any], body: Data) {
        let n = data.prefix(8).withUnsafeBytes { Int($0.loadUnaligned(as: UInt64.self)) }
        let header = (try? JSONSerialization.jsonObject(with: data.subdata(in: 8 ..< 8 + n))) as? [String: Any] ?? [:]
        return (header, data.subdata(in: 8 + n ..< data.count))
    }

    /// Reassembles a safetensors file from a header object and a data section.
    static func join(_ header: [String: Any], _ body: Data) -> Data {
        var json = (try? JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])) ?? Data()
        while json.count % 8 != 0 { json.append(0x20) }
        var out = Data()
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        return out + json + body
    }
}
