import ExitClass
import Foundation
@testable import MLA
import SafeTensors
import TensorCore
import TensorParallel
import Testing

/// The MLA layer with fp8 weights (W8A16): an fp8 checkpoint held as stored, the bits of the bf16
/// layer on it at every shard, and each way a checkpoint or its config can be wrong about fp8.
@Suite(.serialized) struct FP8LayerTests {
    static let dir = Golden.dir("fp8_block")
    static var config: MLAConfig { get throws { try MLAConfig.load(path: dir + "/config.json") } }

    @Test func anFP8CheckpointIsHeldAsStoredAndItsBF16TensorsStayBF16() throws {
        let c = try Self.config
        let file = try SafeTensorsFile(path: Self.dir + "/model.safetensors")
        let weights = try CheckpointWeights(path: Self.dir, config: c)
        let layer = try MLAAttention(config: c, shard: .whole, source: weights, storage: FP8BlockStorage.self)
        let stored = file.tensors.values.reduce(0) { $0 + $1.elementCount * $1.dtype.byteSize }
        #expect(weights.bytesRead == stored, "every tensor read once, as stored: \(weights.bytesRead) of \(stored) bytes")
        for l in layer.layers {
            let fp8 = !l.name.hasSuffix("kv_b_proj") && !l.name.hasSuffix(".gate")
            #expect((l.storage is FP8BlockStorage) == fp8, "\(l.name): \(type(of: l.storage))")
        }
        #expect(layer.layers.first { $0.name.hasSuffix(".gate") }?.storage is BF16Storage)            // BF16 in the checkpoint
        #expect(layer.layers.first { $0.name.hasSuffix("kv_b_proj") }?.storage is DequantizedFP8Storage) // read by the absorbed kernels
        let fp8Bytes = file.tensors.values.filter { $0.dtype == .F8_E4M3 && !$0.name.contains("kv_b") }.reduce(0) { $0 + $1.elementCount }
        let scales = file.tensors.values.filter { $0.name.hasSuffix("_scale_inv") && !$0.name.contains("kv_b") }.reduce(0) { $0 + 4 * $1.elementCount }
        let bf16 = file.tensors.values.filter { $0.dtype == .BF16 || $0.name.hasSuffix("kv_b_proj.weight") }.reduce(0) { $0 + 2 * $1.elementCount }
        #expect(layer.weightBytes == fp8Bytes + scales + bf16)
    }

    /// The fp8 layer and the bf16 layer on the same fp8 checkpoint give the same bits: at tp = 1
    /// whole, and at tp = 2 and 4 each rank's o_proj partial, on the row kernel's route (10 tokens)
    /// and the tiled GEMM's (48).
    @Test(arguments: [1, 2, 4], [10, 48])
    func fp8LayerGivesTheBitsOfTheBF16LayerOnAnFP8Checkpoint(tp: Int, tokens: Int) throws {
        let c = try Self.config
        let x = try seededInput(tokens: tokens, hidden: c.hiddenSize, seed: 7)
        let batch = try Batch(sequenceLengths: [tokens / 2, tokens - tokens / 2])
        for r in 0..<tp {
            let shard = Shard(rank: r, size: tp)
            let fp8 = try MLAAttention(config: c, shard: shard, source: try CheckpointWeights(path: Self.dir, config: c), storage: FP8BlockStorage.self)
            let bf16 = try MLAAttention(config: c, shard: shard, source: try CheckpointWeights(path: Self.dir, config: c), precision: .bf16)
            let a = try fp8.forwardPartial(x, batch: batch), b = try bf16.forwardPartial(x, batch: batch)
            #expect(a.storage.map(\.bitPattern) == b.storage.map(\.bitPattern), "tp=\(tp) rank \(r) T=\(tokens)")
        }
    }

    // MARK: - checkpoints and configs that are wrong about fp8

    /// A copy of the fixture with `edit` applied to its tensors (name → (dtype, shape, bytes)) and `config` to its config.json.
    static func variant(_ edit: (inout [String: (DType, [Int], [UInt8])]) -> Void,
                        config: (inout [String: Any]) -> Void = { _ in }) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fp8-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false)
        let file = try SafeTensorsFile(path: Self.dir + "/model.safetensors")
        var tensors: [String: (DType, [Int], [UInt8])] = [:]
        for (name, info) in file.tensors { tensors[name] = (info.dtype, info.shape, try file.withRawBytes(of: name) { Array($0) }) }
        edit(&tensors)
        var writer = SafeTensorsWriter()
        for (name, t) in tensors { try writer.add(name, dtype: t.0, shape: t.1, bytes: t.2) }
        try writer.write(to: dir + "/model.safetensors")
        var json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: Self.dir + "/config.json"))) as! [String: Any]
        config(&json)
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: dir + "/config.json"))
        return dir
    }

    static let qB = "model.layers.0.self_attn.q_b_proj.weight"

    /// Loads the variant in every format; each must fail with `check`.
    static func expectEveryFormatFails(_ dir: String, _ check: (Error) -> Bool) throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for storage in [F32Storage.self, BF16Storage.self, FP8BlockStorage.self] as [any WeightStorage.Type] {
            do {
                let c = try MLAConfig.load(path: dir + "/config.json")
                _ = try MLAAttention(config: c, shard: Shard(rank: 0, size: 2), source: try CheckpointWeights(path: dir, config: c), storage: storage)
                Issue.record("\(storage) loaded a bad checkpoint")
            } catch {
                #expect(check(error), "\(storage): \(error)")
                #expect("\(error)".contains(" — "), "the message says what to do: \(error)")
            }
        }
    }

    @Test(arguments: [Float(0), -0.5, .nan, .infinity, -.infinity])
    func aScaleThatIsNotFiniteAndPositiveIsRefusedNamingTheTile(value: Float) throws {
        let dir = try Self.variant { t in
            var s = t[Self.qB.replacingOccurrences(of: ".weight", with: ".weight_scale_inv")]!
            withUnsafeBytes(of: value.bitPattern.littleEndian) { s.2.replaceSubrange(4..<8, with: $0) }   // tile (0, 1)
            t[Self.qB.replacingOccurrences(of: ".weight", with: ".weight_scale_inv")] = s
        }
        try Self.expectEveryFormatFails(dir) {
            guard case let .badScale(_, scale, weight, tile, _) = $0 as? SafeTensorsReadError else { return false }
            return scale.hasSuffix("q_b_proj.weight_scale_inv") && weight == Self.qB && tile == [0, 1]
        }
    }

    @Test func aMissingScaleAndAScaleOfTheWrongShapeAreRefusedNamingTheTensor() throws {
        let scale = Self.qB.replacingOccurrences(of: ".weight", with: ".weight_scale_inv")
        try Self.expectEveryFormatFails(try Self.variant { $0[scale] = nil }) {
            "\($0)".contains(scale) && ($0 as? ExitClassified)?.failureClass == .input
        }
        try Self.expectEveryFormatFails(try Self.variant { $0[scale] = (.F32, [2, 2], [UInt8](repeating: 0x3f, count: 16)) }) {
            guard case let .scaleShapeMismatch(_, weight, _, _, found, expected, _) = $0 as? SafeTensorsReadError else { return false }
            return weight == Self.qB && found == [2, 2] && expected == [1, 2]
        }
    }

    @Test func aProjectionTheConfigDeclaresFP8ButTheCheckpointHoldsInBF16IsRefused() throws {
        let dir = try Self.variant { t in
            let n = t[Self.qB]!.1.reduce(1, *)
            t[Self.qB] = (.BF16, t[Self.qB]!.1, [UInt8](repeating: 0x3c, count: 2 * n))
        }
        try Self.expectEveryFormatFails(dir) {
            guard case let .notQuantized(tensor, _, dtype) = $0 as? CheckpointError else { return false }
            return tensor == Self.qB && dtype == "BF16" && ($0 as? ExitClassified)?.failureClass == .input
        }
    }

    @Test(arguments: [("quant_method", "\"awq\""), ("fmt", "\"e5m2\""), ("weight_block_size", "[128, 64]"), ("weight_block_size", "[0, 0]")])
    func aQuantizationConfigMLATPDoesNotReadIsAConfigError(key: String, value: String) throws {
        let dir = try Self.variant({ _ in }) { json in
            var q = json["quantization_config"] as! [String: Any]
            q[key] = try? JSONSerialization.jsonObject(with: Data(value.utf8), options: .fragmentsAllowed)
            json["quantization_config"] = q
        }
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Refused as the file is read, naming the file and the key.
        #expect {
            _ = try MLAConfig.load(path: dir + "/config.json")
        } throws: { error in
            guard case let .inFile(file, inner) = error as? ConfigError, file == dir + "/config.json",
                  case let .unsupportedQuantization(k, _, _) = inner else { return false }
            return k == "quantization_config.\(key)" && (error as? ExitClassified)?.failureClass == .config
        }
    }
}
