import MLA
import Planner
import TensorCore
import TensorParallel

extension BenchEngine {
    /// The layer's largest local weight whose input is the hidden state (the gate, or q_a).
    var largestHiddenWideLayer: ParallelLayer? {
        attention.layers.filter { $0.layout != .row && $0.localIn == config.hiddenSize }.max { $0.localOut < $1.localOut }
    }

    /// That weight as the layer keeps it (its storage shared with the layer: no copy), run as the
    /// prefill's reference: f32 on the kernel the layer's own product takes; bf16 through oneDNN's
    /// bf16 matmul (issue 14's reference), whatever the layer runs on. An fp8 weight has no bf16
    /// form to share: its reference is oneDNN's bf16 matmul over the rows of one dequantized tile
    /// of the fp8 route (`FP8BlockMatrix.tileBytes`), so the bench holds no bf16 copy of the weight.
    func largestHiddenWideWeight(x: Matrix) -> GemmProbe? {
        largestHiddenWideLayer.map { layer in
            if let fp8 = layer.storage as? FP8BlockStorage {
                return GemmProbe(x: x, weight: .bf16(fp8.values.dequantized(rows: 0..<fp8.values.tileRows())), order: .outIn, route: .oneDNN)
            }
            return GemmProbe(x: x, weight: layer.weight, order: layer.order, route: layer.precision == .bf16 ? .oneDNN : .automatic)
        }
    }

    /// Which kernel ran each projection in the last timed forward, and the reference projection's name.
    func recordKernels(_ result: inout BenchPhaseResult) {
        result.kernels = attention.counters.kernels
        result.referenceProjection = largestHiddenWideLayer.map { String($0.name.split(separator: ".").last ?? "") }
    }

    /// Prefill of one sequence of T tokens; after each timed forward, `cblas_sgemm` on the layer's
    /// largest hidden-wide weight (nothing weight-sized allocated) and the raw allreduces.
    public func prefill(tokens T: Int, warmup: Int, repeats: Int) throws -> BenchPhaseResult {
        let x = try seededInput(tokens: T, hidden: config.hiddenSize, seed: seed)     // [T, hidden]
        let batch = try Batch(sequenceLengths: [T])
        var out = Matrix(rows: T, cols: config.hiddenSize)                              // [T, hidden]
        let plan = try FlopModel.prefill(config: config, tp: tp, gate: gate, sequenceLengths: [T], mode: attention.mode,
                                         latent: attention.latentProjection)
        let bytes = ShardingPlan.allReduceBytes(tokens: T, config: config, bytesPerElement: collectives.reducePrecision.bytesPerElement)
        let gemm = largestHiddenWideWeight(x: x)
        let probe = Probe(world: world)
        let (timed, memory) = try time(warmup: warmup, repeats: repeats, activations: {
            (try? SizeBudget.activationBytes(tokens: T, config: config, tp: tp, precision: attention.precision)) ?? 0
        }, {
            try attention.forward(x, batch: batch, collectives: collectives, into: &out)
        }, reference: {
            let s = try gemm.map { try probe.sgemm($0, repeats: 1).median } ?? 0
            let (hot, cold) = try rawAllReduce(probe, bytes: bytes, repeats: 3)
            return Reference(kernel: s, rawHot: hot, rawCold: cold)
        })
        var result = result(timed, tokensPerForward: T, sequences: 1, planFlops: plan.totalFlops, allReduceBytes: bytes, memory: memory)
        recordKernels(&result)
        if let gemm {
            result.sgemmKernel = probe.kernel(of: gemm).description
            let s = timed.samples(\.kernel), flops = Double(try gemm.flops)
            result.sgemmShape = [T, gemm.n, gemm.k]
            result.sgemmWeightOrder = gemm.order
            result.sgemmWeightTile = largestHiddenWideLayer?.storage is FP8BlockStorage ? true : nil
            result.sgemmSeconds = s
            result.sgemmFlopsPerSecond = flops / max(s.median, 1e-12)
            // Per timed forward: its GEMM rate over the rate of the sgemm right after it.
            let forwardFlops = Double(result.flops)
            result.gemmEfficiency = result.totalSeconds.paired(with: s) { fwd, ref in (forwardFlops / fwd) / (flops / max(ref, 1e-12)) }
        }
        return result
    }

    /// B sequences prefilled with C tokens each into a latent cache held as `cacheDType`, then
    /// timed decode steps of one new token per sequence; after each step a memcpy of `copyBytes`
    /// and the raw allreduces.
    public func decode(context C: Int, sequences B: Int, path: DecodePath, cacheDType: KVCacheDType, warmup: Int, repeats: Int,
                       copyBytes: Int) throws -> BenchPhaseResult {
        let hidden = config.hiddenSize
        let cache = KVCache(config: config, sequences: B, dtype: cacheDType)
        let prompt = try Batch(sequenceLengths: Array(repeating: C, count: B))
        _ = try attention.prefill(try seededInput(tokens: B * C, hidden: hidden, seed: seed), batch: prompt,
                                  cache: cache, collectives: collectives)
        // A decode instance (prefill/decode disaggregation): the prompt's prefill buffers are freed
        // and their pages returned, so the memory read is the decode steps' own.
        attention.releaseBuffers()
        ProcessMemory.returnFreedPages()
        let x = try seededInput(tokens: B, hidden: hidden, seed: seed &+ 1)          // [B, hidden]
        let bytes = ShardingPlan.allReduceBytes(tokens: B, config: config, bytesPerElement: collectives.reducePrecision.bytesPerElement)
        let hl = config.localHeads(tp: tp)
        var firstContext = 0, lastContexts: [Int] = [], steps = 0
        let probe = Probe(world: world)
        let (timed, memory) = try time(warmup: warmup, repeats: repeats, activations: {
            // The decode step's own buffers (the prompt's were freed); the cache; and on the naive
            // path one sequence's expanded keys and values.
            var a = ((try? SizeBudget.activationBytes(tokens: B, config: config, tp: tp, precision: attention.precision)) ?? 0) + cache.bytes
            if path == .naive { a += 4 * (cache.lengths.max() ?? 0) * hl * (config.qkNopeHeadDim + config.vHeadDim) }
            return a
        }, {
            if steps == warmup + 1 { firstContext = cache.lengths[0] }
            lastContexts = cache.lengths
            _ = try attention.decode(x, cache: cache, path: path, collectives: collectives)
            steps += 1
        }, reference: {
            let c = try probe.copy(bytes: copyBytes, repeats: 1).median
            let (hot, cold) = try rawAllReduce(probe, bytes: bytes, repeats: 5)
            return Reference(kernel: c, rawHot: hot, rawCold: cold)
        })
        let plan = try FlopModel.decode(config: config, tp: tp, gate: gate, contexts: lastContexts, path: path, latent: attention.latentProjection)
        var result = result(timed, tokensPerForward: B, sequences: B, planFlops: plan.totalFlops, allReduceBytes: bytes, memory: memory)
        recordKernels(&result)
        let weights = attention.weightBytes                     // in the weights' own precision: bf16 counts 2 bytes
        let copies = timed.samples(\.kernel)
        result.contextFirst = firstContext
        result.contextLast = lastContexts.first
        result.weightBytesPerStep = weights
        result.weightBytesPerToken = weights / B
        result.weightBytesPerSecond = Double(weights) / max(result.totalSeconds.median, 1e-12)
        result.cacheBytes = cache.bytes
        result.cacheDType = cacheDType
        result.copySeconds = copies
        result.copyBytesPerSecond = 2 * Double(copyBytes) / max(copies.median, 1e-12)
        let copyRate = { (s: Double) in 2 * Double(copyBytes) / max(s, 1e-12) }
        result.bandwidthEfficiency = result.totalSeconds.paired(with: copies) { Double(weights) / $0 / copyRate($1) }
        let busy = Samples(zip(timed.total, timed.wait).map { max($0 - $1, 1e-12) })
        result.busyBandwidthEfficiency = busy.paired(with: copies) { Double(weights) / $0 / copyRate($1) }
        return result
    }
}
