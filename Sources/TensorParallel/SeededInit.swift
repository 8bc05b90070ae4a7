import Foundation

/// Deterministic, tensor-parallel-independent random values.
///
/// Element `i` (its global row-major index) of tensor `name` is a pure function of
/// `(seed, name, i)`: a counter-based generator, like Philox or Threefry but on SplitMix64.
/// Each rank evaluates exactly the indices of its own shard, never the whole tensor, and the
/// values are identical whatever tp is — so a tp=4 run and the unsharded reference see the
/// same weights.
public enum SeededInit {
    /// 64-bit FNV-1a of the tensor's name.
    public static func nameKey(_ name: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in name.utf8 { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
        return h
    }

    /// SplitMix64's finalizer: a bijective mix of 64 bits.
    @inline(__always)
    static func mix(_ z0: UInt64) -> UInt64 {
        var z = z0 &+ 0x9e37_79b9_7f4a_7c15
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }

    /// A uniform value in (0, 1) for counter `index` under `key`.
    @inline(__always)
    static func uniform(_ key: UInt64, _ index: UInt64) -> Double {
        let bits = mix(key ^ mix(index))
        return (Double(bits >> 11) + 0.5) * (1.0 / 9_007_199_254_740_992.0)
    }

    /// A standard normal value for element `index` (Box–Muller on two counters).
    @inline(__always)
    public static func normal(key: UInt64, index: Int) -> Float {
        let u1 = uniform(key, UInt64(index) &* 2)
        let u2 = uniform(key, UInt64(index) &* 2 &+ 1)
        return Float((-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2))
    }

    /// Fills `rows × cols` of a tensor whose rows are `globalCols` wide, row-major,
    /// with `mean + std · N(0, 1)` keyed by `(seed, name, global index)`.
    public static func fill(
        name: String, seed: UInt64, rows: Range<Int>, cols: Range<Int>, globalCols: Int,
        mean: Float = 0, std: Float
    ) -> [Float] {
        let key = mix(seed ^ nameKey(name))
        var out = [Float](repeating: 0, count: rows.count * cols.count)
        var k = 0
        for r in rows {
            let base = r * globalCols
            for c in cols {
                out[k] = mean + std * normal(key: key, index: base + c)
                k += 1
            }
        }
        return out
    }
}

