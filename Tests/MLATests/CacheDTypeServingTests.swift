import MLA
import TensorCore
import TensorParallel
import Testing

/// Every reader of the latent cache (the absorbed decode, the naive decode, chunked prefill over a
/// cached prefix) with every cache dtype.
@Suite struct CacheDTypeServingTests {
    let source = SeededWeights(seed: 11)

    func input(_ c: MLAConfig, _ tokens: Int) throws -> Matrix {
        try Matrix(rows: tokens, cols: c.hiddenSize,
                   values: try SeededInit.fill(name: "x", seed: 11, rows: 0..<tokens, cols: 0..<c.hiddenSize, globalCols: c.hiddenSize, std: 1))
    }

    /// deepseek-v2-lite's heads (kv_lora 512, rope 64: four fp8 groups a token), four of them.
    static var kvLora512: MLAConfig {
        var c = Presets.deepseekV2Lite
        c.hiddenSize = 256
        c.numAttentionHeads = 4
        return c
    }

    /// Schedules that exercise every reader: decode steps, chunked prefill after a cached prefix,
    /// a prefill longer than one tile of cached rows (`KVCache.tileTokens`), naive and absorbed.
    static let schedules: [(decodeSteps: Int, chunk: Int?)] = [(3, nil), (2, 4), (12, nil), (1, 100)]

    /// Under `--dtype bf16` the cached values are bf16 already: a bf16 cache holds them exactly and
    /// the readers run the same GEMMs on the same tiles, so every output bit equals the f32 cache's.
    @Test(arguments: DecodePath.allCases)
    func aBF16CacheServesBitIdenticallyToAnF32CacheUnderBF16(path: DecodePath) throws {
        let c = Self.kvLora512
        let layer = try MLAAttention(config: c, shard: .whole, source: source, precision: .bf16)
        let batch = try Batch(sequenceLengths: [7, 1, 12, 150])
        let x = try input(c, batch.tokenCount)
        for (d, chunk) in Self.schedules {
            let schedule = try ServingSchedule(batch: batch, decodeSteps: d, prefillChunk: chunk)
            let f32 = try layer.serve(x, batch: batch, schedule: schedule, decode: path, collectives: .local, cacheDType: .f32)
            let bf16 = try layer.serve(x, batch: batch, schedule: schedule, decode: path, collectives: .local, cacheDType: .bf16)
            #expect(layer.lastCache?.dtype == .bf16 && layer.lastCache?.bytes == batch.tokenCount * 2 * 576)
            let differing = zip(f32.storage, bf16.storage).filter { $0.bitPattern != $1.bitPattern }.count
            #expect(differing == 0, "\(path) D=\(d) chunk=\(String(describing: chunk)): \(differing) of \(f32.count) elements differ")
        }
    }

    /// The absorbed and the naive decode read the same stored values (a step's own new tokens
    /// are read back as the cache holds them, like earlier ones), so over any cache they agree to
    /// f32 arithmetic, in schedules that mix decode steps with chunked prefill over a cached prefix.
    /// (Across schedules a lossy cache may store a value one step apart: kv_a_proj's last bits
    /// change with the step's row count. Chunked prefill is checked against the DCP decode kernel
    /// under mpirun, `LayoutTests`.)
    @Test(arguments: KVCacheDType.allCases)
    func absorbedAndNaiveDecodeAgreeOverEveryCache(dtype: KVCacheDType) throws {
        let c = Self.kvLora512
        let layer = try MLAAttention(config: c, shard: .whole, source: source)
        let batch = try Batch(sequenceLengths: [30, 9, 140])
        let x = try input(c, batch.tokenCount)
        for (d, chunk) in Self.schedules {
            let schedule = try ServingSchedule(batch: batch, decodeSteps: d, prefillChunk: chunk)
            let absorbed = try layer.serve(x, batch: batch, schedule: schedule, decode: .absorbed, collectives: .local, cacheDType: dtype)
            let naive = try layer.serve(x, batch: batch, schedule: schedule, decode: .naive, collectives: .local, cacheDType: dtype)
            let cmp = try Comparison(naive, reference: absorbed)
            #expect(cmp.relative < 1e-5, "\(dtype) D=\(d) chunk=\(String(describing: chunk)): \(cmp.relative)")
        }
        #expect(layer.lastCache?.bytes == batch.tokenCount * KVCache.bytesPerToken(config: c, dtype: dtype))
    }
}
