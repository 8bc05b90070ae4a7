import TensorCore

/// Deterministic, tensor-parallel-independent random values.
///
/// Element `i` (its global row-major index) of tensor `name` is a pure function of
/// `(seed, name, i)`: a counter-based generator, as in Philox or Threefry, here SplitMix64.
/// Each rank evaluates exactly the indices of its own shard, never the whole tensor, and the
/// values are identical whatever tp is — so a tp=4 run and the unsharded reference see the
/// same weights.
///
/// Block sizes are checked (`Checked`): a block whose element count overflows throws
/// `CountOverflow` before anything is allocated; the counter itself wraps, as a hash input may.
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

    /// A value in [-1, 1) for counter `index` under `key`: SplitMix64's output for state
    /// `key + index·γ`, one mix per element (so filling a shard costs ~1 ns per value).
    @inline(__always)
    public static func symmetric(key: UInt64, index: Int) -> Float {
        let bits = mix(key &+ UInt64(bitPattern: Int64(index)) &* 0x9e37_79b9_7f4a_7c15)
        return Float(bits >> 40) * (2.0 / 16_777_216.0) - 1
    }

    /// Fills `rows × cols` of a tensor whose rows are `globalCols` wide, row-major, with values
    /// of mean `mean` and standard deviation `std` (uniform on `mean ± √3·std`), keyed by
    /// `(seed, name, global index)`.
    public static func fill(
        name: String, seed: UInt64, rows: Range<Int>, cols: Range<Int>, globalCols: Int,
        mean: Float = 0, std: Float
    ) throws(CountOverflow) -> [Float] {
        let n = try Checked.product(rows.count, cols.count, what: "elements of \(name) [\(rows.count), \(cols.count)]")
        return [Float](unsafeUninitializedCapacity: n) { out, count in
            write(name: name, seed: seed, rows: rows, cols: cols, globalCols: globalCols, mean: mean, std: std, into: out)
            count = n
        }
    }

    /// `fill`'s values written into `out` (every element of it): row-major `[rows, cols]`, or
    /// with `transposed` `[cols, rows]`, element `(c, r)` being the value of global element
    /// `(r, c)` — the same numbers, for a layer that keeps its weight `[in, out]`.
    public static func write(
        name: String, seed: UInt64, rows: Range<Int>, cols: Range<Int>, globalCols: Int,
        mean: Float = 0, std: Float, transposed: Bool = false, into out: UnsafeMutableBufferPointer<Float>
    ) {
        let (n, overflow) = rows.count.multipliedReportingOverflow(by: cols.count)
        precondition(!overflow && out.count == n, "SeededInit.write: \(out.count) floats for a [\(rows.count), \(cols.count)] block")
        let key = mix(seed ^ nameKey(name))
        let scale = std * Float(3).squareRoot()
        let (rowStep, colStep) = transposed ? (1, rows.count) : (cols.count, 1)    // where (i, j) of the block goes
        for (i, r) in rows.enumerated() {
            let base = r &* globalCols
            for (j, c) in cols.enumerated() {
                out[i * rowStep + j * colStep] = mean + scale * symmetric(key: key, index: base &+ c)
            }
        }
    }
}
