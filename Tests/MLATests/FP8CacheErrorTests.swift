import Foundation
@testable import MLA
import TensorCore
import TensorParallel
import Testing

/// The absorbed decode of a layer over an fp8 (and a bf16) cache against float64 attention over
/// the exact cache, held within a bound derived from the storage's rounding (docs/precision.md,
/// "The KV cache"). The query, kv_b_proj and the cached rows are a seeded layer's own, taken
/// after serving a sequence: the tiny preset, and deepseek-v3's head dimensions with 4 heads.
@Suite struct FP8CacheErrorTests {
    static let u = 0x1p-24
    static func gamma(_ n: Int) -> Double { Double(n) * u / (1 - Double(n) * u) }

    /// One decode query and what it attends over.
    struct Case {
        let config: MLAConfig
        let layer: MLAAttention
        let q: Matrix           // [1, H·qStride], the decode token's q after RoPE
        let rows: [Float]       // [nk, lora + rope] the cached rows as computed (f32)
        let nk: Int

        init(_ c: MLAConfig, tokens nk: Int) throws {
            config = c
            layer = try MLAAttention(config: c, shard: .whole, source: SeededWeights(seed: 11))
            let batch = try Batch(sequenceLengths: [nk])
            let x = try Matrix(rows: nk, cols: c.hiddenSize,
                               values: try SeededInit.fill(name: "x", seed: 11, rows: 0..<nk, cols: 0..<c.hiddenSize, globalCols: c.hiddenSize, std: 1))
            _ = try layer.serve(x, batch: batch, schedule: try ServingSchedule(batch: batch, decodeSteps: 1), decode: .absorbed,
                                collectives: .local, cacheDType: .f32)
            q = layer.workspace.q
            let keys = layer.lastCache!.rows(slot: 0), width = keys.width
            rows = keys.tiles.flatMap { Array(UnsafeBufferPointer(start: keys.tile($0), count: $0.count * width)) }
            self.nk = nk
        }

        var lora: Int { config.kvLoraRank }
        var width: Int { config.kvLoraRank + config.qkRopeHeadDim }
        var kvB: [Float] { layer.kvB.weightOutIn.widened().storage }

        /// The rows as a cache of `dtype` holds them, read back.
        func cache(_ dtype: KVCacheDType) throws -> (KVCache, [Float]) {
            let cache = KVCache(config: config, sequences: 1, dtype: dtype)
            cache.append(slot: 0, from: try Matrix(rows: nk, cols: width, values: rows), rows: 0..<nk)
            let keys = cache.rows(slot: 0)
            return (cache, keys.tiles.flatMap { Array(UnsafeBufferPointer(start: keys.tile($0), count: $0.count * width)) })
        }

        /// The layer's absorbed decode over `cache`: `[H·v]`.
        func decode(_ cache: KVCache) -> [Float] {
            let a = layer.absorbed, H = config.numAttentionHeads
            var out = [Float](repeating: .nan, count: H * config.vHeadDim)
            var work = [Float](repeating: .nan, count: a.workspaceCount(nq: 1, nk: nk))
            q.storage.withUnsafeBufferPointer { qp in layer.kvB.weight.withGemmSource { wb in
                out.withUnsafeMutableBufferPointer { o in work.withUnsafeMutableBufferPointer { w in
                    _ = a.run(q: qp.baseAddress!, ldq: q.cols, keys: cache.rows(slot: 0), kvB: wb, out: o.baseAddress!,
                              ldo: H * config.vHeadDim, nq: 1, work: w.baseAddress!)
                } }
            } }
            return out
        }
    }

    /// Float64 attention over the exact rows, and the bound on the kernel's distance from it when it
    /// reads `stored` (the rows as the cache gives them back), per output `[H·v]`. `rounding(j, i)`
    /// bounds |stored − exact| of row j's value i by what the dtype's rounding allows (a priori);
    /// without it the bound takes the actual differences δ = stored − exact (a posteriori).
    ///
    /// With x = [q̃ | q_rope], s_j = scale·x·c_j, p = softmax(s), o = Σ p_j L_j, O_h = o·W_UVᵀ:
    /// - the computed score differs from s_j by E_j ≤ scale·(Σ_i |x_i|·δ̄_ji [or |x·δ_j|] + Σ_i a_i|ĉ_ji|
    ///   + γ(width+1)·Σ_i (|x_i| + a_i)|ĉ_ji|), with a = γ(nope)·|q_nope|·|W_UK| the absorb GEMM's error;
    /// - softmax of scores off by at most E_j each: p̃_j / p_j ∈ [e^-(E_j+E), e^(E_j+E)], E = max E_j;
    ///   its f32 evaluation adds a relative η = 2·(u·max|z| + 3·2^-23) + γ(nk) + 2u (FastExp is
    ///   within 2 ulp of expf, itself within 1; z = s − max s);
    /// - `P·latent`: |ô_c − o_c| ≤ Σ_j p_j[(e^(E_j+E) − 1) + e^(E_j+E)·η]|L̂_jc| + Σ_j p_j·δ_jc
    ///   + γ(nk)·Σ_j p_j·e^(E_j+E)(1+η)|L̂_jc|;
    /// - `·W_UVᵀ`: |Ô_v − O_v| ≤ Σ_c |W_UV[v,c]|·B_c + γ(lora)·Σ_c |W_UV[v,c]|(|o_c| + B_c).
    static func reference(_ k: Case, stored: [Float], rounding: ((Int, Int) -> Double)? = nil) -> (exact: [Double], bound: [Double]) {
        let c = k.config, H = c.numAttentionHeads, nope = c.qkNopeHeadDim, rope = c.qkRopeHeadDim, vDim = c.vHeadDim
        let lora = k.lora, width = k.width, nk = k.nk, qs = k.layer.qStride, scale = Double(k.layer.absorbed.scale), kvB = k.kvB
        var exact = [Double](repeating: 0, count: H * vDim), bound = exact
        for h in 0..<H {
            let q = (0..<(nope + rope)).map { Double(k.q.storage[h * qs + $0]) }
            let wUK = h * (nope + vDim) * lora, wUV = wUK + nope * lora
            var x = [Double](repeating: 0, count: width), a = x
            for l in 0..<lora {
                for d in 0..<nope {
                    x[l] += q[d] * Double(kvB[wUK + d * lora + l])
                    a[l] += abs(q[d] * Double(kvB[wUK + d * lora + l]))
                }
                a[l] *= gamma(nope)
            }
            for r in 0..<rope { x[lora + r] = q[nope + r] }
            var s = [Double](repeating: 0, count: nk), e = s
            for j in 0..<nk {
                var dot = 0.0, slack = 0.0, gemm = 0.0, pert = 0.0
                for i in 0..<width {
                    let cij = Double(k.rows[j * width + i]), hat = Double(stored[j * width + i])
                    dot += x[i] * cij
                    slack += a[i] * abs(hat)
                    gemm += (abs(x[i]) + a[i]) * abs(hat)
                    pert += rounding.map { abs(x[i]) * $0(j, i) } ?? x[i] * (hat - cij)
                }
                s[j] = scale * dot
                e[j] = scale * (abs(pert) + slack + gamma(width + 1) * gemm)
            }
            let m = s.max()!, E = e.max()!
            let w = s.map { Foundation.exp($0 - m) }, z = w.reduce(0, +), p = w.map { $0 / z }
            let eta = 2 * (u * ((s.map { m - $0 }.max() ?? 0) + 2 * E) + 3 * 0x1p-23) + gamma(nk) + 2 * u
            var o = [Double](repeating: 0, count: lora), b = o
            for col in 0..<lora {
                for j in 0..<nk {
                    let grow = Foundation.exp(e[j] + E), hat = abs(Double(stored[j * width + col]))
                    o[col] += p[j] * Double(k.rows[j * width + col])
                    let delta = rounding?(j, col) ?? abs(Double(stored[j * width + col]) - Double(k.rows[j * width + col]))
                    b[col] += p[j] * (((grow - 1) + grow * eta) * hat + delta + gamma(nk) * grow * (1 + eta) * hat)
                }
                b[col] = b[col] * 1.01 + 1e-37                          // second-order terms; FastExp's floor at e^-87
            }
            for v in 0..<vDim {
                var out = 0.0, err = 0.0, round = 0.0
                for col in 0..<lora {
                    let wv = Double(kvB[wUV + v * lora + col])
                    out += o[col] * wv
                    err += abs(wv) * b[col]
                    round += abs(wv) * (abs(o[col]) + b[col])
                }
                exact[h * vDim + v] = out
                bound[h * vDim + v] = err + gamma(lora) * round
            }
        }
        return (exact, bound)
    }

    /// What each dtype's rounding allows a stored value to differ by: e4m3 of value/scale (2^-4
    /// relative, 2^-10·scale for the smallest codes) for the fp8 latent, bf16's 2^-8 for k_rope and
    /// for the bf16 cache, nothing for f32. f32's own 2^-24 per operation is in the slack.
    static func roundingBound(_ k: Case, dtype: KVCacheDType) -> (Int, Int) -> Double {
        let lora = k.lora, width = k.width, rows = k.rows
        let scales: [[Double]] = (0..<k.nk).map { j in
            stride(from: 0, to: lora, by: 128).map { g in
                Double(max((g ..< min(g + 128, lora)).map { abs(rows[j * width + $0]) }.max()! / 448, .leastNormalMagnitude))
            }
        }
        return { j, i in
            let x = abs(Double(rows[j * width + i]))
            switch dtype {
            case .f32: return 0
            case .bf16: return 0x1p-8 * x + 0x1p-133
            case .fp8: return i < lora ? (0x1p-4 + 0x1p-20) * x + 0x1p-10 * scales[j][i / 128] * (1 + 0x1p-20) : 0x1p-8 * x + 0x1p-133
            }
        }
    }

    static var deepseekV3Shaped: MLAConfig {
        var c = Presets.deepseekV3
        c.hiddenSize = 256
        c.numAttentionHeads = 4
        return c
    }

    /// Each stored value is within its dtype's rounding (the premise), and each dtype's decode is
    /// within the bound propagated from the values actually stored and from what the rounding
    /// allows; fp8 and bf16 are within the sum of their bounds of each other.
    @Test(arguments: [(0, 40), (1, 300)])
    func absorbedDecodeOverEachCacheIsWithinItsDerivedBound(shape: Int, tokens: Int) throws {
        let c = { (s: Int) in s == 0 ? "tiny, \(tokens) tokens" : "deepseek-v3 heads (4 of them), \(tokens) tokens" }
        let k = try Case(shape == 0 ? Presets.tiny : Self.deepseekV3Shaped, tokens: tokens)
        var outputs: [KVCacheDType: (got: [Float], actual: [Double])] = [:]
        for dtype in KVCacheDType.allCases {
            let (cache, stored) = try k.cache(dtype)
            let rounding = Self.roundingBound(k, dtype: dtype)               // the premise: each stored value within its rounding
            let outside = stored.indices.filter { abs(Double(stored[$0]) - Double(k.rows[$0])) > rounding($0 / k.width, $0 % k.width) }
            #expect(outside.count == 0, "\(dtype): stored values outside their rounding, the first at \(outside.first ?? 0)")
            let got = k.decode(cache)
            let actual = Self.reference(k, stored: stored)
            let prior = Self.reference(k, stored: stored, rounding: rounding)
            let worst = zip(got, zip(actual.exact, actual.bound)).map { abs(Double($0) - $1.0) / $1.1 }.max()!
            let worstPrior = zip(got, zip(prior.exact, prior.bound)).map { abs(Double($0) - $1.0) / $1.1 }.max()!
            #expect(worst <= 1 && worstPrior <= 1, "\(dtype), \(tokens) tokens: |Δ| / bound \(worst) (from the stored values), \(worstPrior) (from the rounding)")
            outputs[dtype] = (got, actual.bound)
            if ProcessInfo.processInfo.environment["MLATP_PRINT_CACHE_ERROR"] != nil {        // the numbers in docs/precision.md
                let absErr = zip(got, actual.exact).map { abs(Double($0) - $1) }.max()!, ref = actual.exact.map(abs).max()!
                print("\(c(shape)) \(dtype): max |Δ| \(absErr), relative \(absErr / ref); |Δ|/bound \(worst) (stored), \(worstPrior) (rounding); "
                      + "bound/max|O| \(actual.bound.max()! / ref) (stored), \(prior.bound.max()! / ref) (rounding)")
            }
        }
        let fp8 = outputs[.fp8]!, bf16 = outputs[.bf16]!
        let apart = (0..<fp8.got.count).map { abs(Double(fp8.got[$0]) - Double(bf16.got[$0])) / (fp8.actual[$0] + bf16.actual[$0]) }.max()!
        #expect(apart <= 1, "fp8 against bf16: |Δ| / (bound + bound) \(apart)")
        if ProcessInfo.processInfo.environment["MLATP_PRINT_CACHE_ERROR"] != nil {
            let ab = zip(fp8.got, bf16.got).map { abs($0 - $1) }.max()!, ref = bf16.got.map(abs).max()!
            print("\(c(shape)) fp8 against bf16: max |Δ| \(ab), relative \(ab / ref); |Δ|/(bound + bound) \(apart)")
        }
    }
}
