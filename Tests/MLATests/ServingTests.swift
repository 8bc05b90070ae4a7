import MLA
import TensorCore
import TensorParallel
import Testing

@Suite struct ServingTests {
    let source = SeededWeights(seed: 11)

    func input(_ c: MLAConfig, _ tokens: Int) throws -> Matrix {
        try Matrix(rows: tokens, cols: c.hiddenSize,
                   values: try SeededInit.fill(name: "x", seed: 11, rows: 0..<tokens, cols: 0..<c.hiddenSize, globalCols: c.hiddenSize, std: 1))
    }

    static let configs: [MLAConfig] = {
        var ungated = Presets.tiny; ungated.useGatedAttn = false
        var softsign = Presets.tiny; softsign.gatedAttnAct = "scaled_softsign"; softsign.qLoraRank = nil
        var yarn = Presets.tiny; yarn.ropeInterleave = false
        yarn.ropeScaling = RopeScaling(type: "yarn", factor: 8, originalMaxPositionEmbeddings: 16, mscale: 0.707, mscaleAllDim: 1)
        return [Presets.tiny, ungated, softsign, yarn]
    }()

    @Test(arguments: 0..<4, DecodePath.allCases)
    func decodingThroughTheCacheEqualsTheFullForward(configIndex: Int, path: DecodePath) throws {
        let c = Self.configs[configIndex]
        let layer = try MLAAttention(config: c, shard: .whole, source: source)
        let batch = try Batch(sequenceLengths: [7, 1, 12])
        let x = try input(c, batch.tokenCount)
        let full = try layer.forward(x, batch: batch, collectives: .local)
        for (d, chunk) in [(3, nil), (12, nil), (2, 4)] as [(Int, Int?)] {
            let schedule = try ServingSchedule(batch: batch, decodeSteps: d, prefillChunk: chunk)
            let served = try layer.serve(x, batch: batch, schedule: schedule, decode: path, collectives: .local)
            let cmp = try Comparison(served, reference: full)
            #expect(cmp.relative < 1e-5, "config \(configIndex) \(path) D=\(d) chunk=\(String(describing: chunk)): \(cmp.relative)")
        }
    }

    @Test func absorbedAndNaiveDecodeAgree() throws {
        let c = Presets.deepseekV2Lite   // real head dims (nope 128, rope 64, v 128, kv_lora 512)
        var small = c; small.hiddenSize = 256; small.numAttentionHeads = 4
        let layer = try MLAAttention(config: small, shard: .whole, source: source)
        let batch = try Batch(sequenceLengths: [30, 9])
        let x = try input(small, batch.tokenCount)
        let schedule = try ServingSchedule(batch: batch, decodeSteps: 5)
        let a = try layer.serve(x, batch: batch, schedule: schedule, decode: .absorbed, collectives: .local)
        let n = try layer.serve(x, batch: batch, schedule: schedule, decode: .naive, collectives: .local)
        #expect(try Comparison(a, reference: n).relative < 1e-5)
    }

    /// One forward that mixes a length-1 sequence (decoding from an empty cache) with a chunk
    /// that prefills after a long cached prefix.
    @Test func mixedBatchOfDecodeAndChunkedPrefillEqualsTheFullForward() throws {
        let c = Presets.tiny
        let layer = try MLAAttention(config: c, shard: .whole, source: source)
        let batch = try Batch(sequenceLengths: [1, 48])
        let x = try input(c, 49)
        let full = try layer.forward(x, batch: batch, collectives: .local)
        let cache = KVCache(config: c, sequences: 2)
        _ = try layer.forward(x.rows(1..<41), step: try ServingStep(slots: [1], newTokens: [40]), cache: cache, collectives: .local)
        var mixed = Matrix(rows: 9, cols: c.hiddenSize)                // row 0: seq 0's token; rows 1…8: seq 1's tokens 40…47
        mixed.storage.replaceSubrange(0..<c.hiddenSize, with: x.rows(0..<1).storage)
        mixed.storage.replaceSubrange(c.hiddenSize..<9 * c.hiddenSize, with: x.rows(41..<49).storage)
        let y = try layer.forward(mixed, step: try ServingStep(slots: [0, 1], newTokens: [1, 8]), cache: cache, collectives: .local)
        #expect(cache.lengths == [1, 48])
        #expect(try Comparison(y.rows(0..<1), reference: full.rows(0..<1)).relative < 1e-5)
        #expect(try Comparison(y.rows(1..<9), reference: full.rows(41..<49)).relative < 1e-5)
    }

    @Test func cacheHoldsTheLatentAndRopeOfEveryTokenAndReportsItsBytes() throws {
        let c = Presets.deepseekV3
        #expect(KVCache.bytesPerToken(config: c, dtype: .f32) == 4 * (512 + 64))
        let tiny = Presets.tiny
        let layer = try MLAAttention(config: tiny, shard: .whole, source: source)
        let cache = KVCache(config: tiny, sequences: 2)
        _ = try layer.prefill(try input(tiny, 10), batch: try Batch(sequenceLengths: [3, 7]), cache: cache, collectives: .local)
        #expect(cache.lengths == [3, 7] && cache.bytes == 10 * KVCache.bytesPerToken(config: tiny, dtype: .f32))
        _ = try layer.decode(try input(tiny, 2), cache: cache, collectives: .local)
        #expect(cache.lengths == [4, 8])
    }

    @Test func scheduleSplitsPrefillChunksThenDecodesOneTokenAtATime() throws {
        let s = try ServingSchedule(batch: try Batch(sequenceLengths: [1, 10]), decodeSteps: 2, prefillChunk: 4)
        #expect(s.steps.map(\.step.newTokens) == [[1, 4], [4], [1], [1]])
        #expect(s.steps[0].rows == [0..<1, 1..<5] && s.steps.last!.rows == [10..<11])
        #expect(throws: ServingScheduleError.self) { try ServingSchedule(batch: try Batch(sequenceLengths: [3]), decodeSteps: -1) }
    }

    @Test func emptyServingStepReturnsZeroRows() throws {
        let c = Presets.tiny
        let layer = try MLAAttention(config: c, shard: .whole, source: source)
        let batch = try Batch(sequenceLengths: [])
        let out = try layer.serve(Matrix(rows: 0, cols: c.hiddenSize), batch: batch,
                                  schedule: try ServingSchedule(batch: batch, decodeSteps: 2), decode: .absorbed, collectives: .local)
        #expect(out.shape == [0, c.hiddenSize])
    }
}
