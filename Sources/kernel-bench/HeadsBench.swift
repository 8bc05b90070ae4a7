import Foundation
import TensorCore

/// The absorbed decode's two per-head products over every local head in one call
/// (`Gemm.runHeads`): W_UK `[nope, lora]` blocks (q̃_h = q_nope_h · W_UK_h) and W_UV `[v, lora]`
/// blocks (O_h = ol_h · W_UV_hᵀ), interleaved as kv_b_proj holds them, bf16, one query per head.
/// Weight bytes per second against the read ceiling of the same rounds.
struct HeadsBench {
    var heads: Int
    var nope, vDim, lora: Int
    var rounds: Int
    var streamBytes: Int

    func run(readBytes: Int) {
        let slice = heads * (nope + vDim) * lora                      // [heads·(nope+v), lora]
        let copies = max(1, streamBytes / (2 * slice))
        let w = (0..<copies).map { BF16.round(values(slice, seed: UInt64(20 + $0))) }
        let q = values(heads * nope, seed: 4), ol = values(heads * lora, seed: 5)
        var qt = [Float](repeating: 0, count: heads * lora), o = [Float](repeating: 0, count: heads * vDim)
        let ceiling = ReadCeiling(bytes: readBytes)
        let hr = (nope + vDim) * lora
        let uk = {
            q.withUnsafeBufferPointer { qp in qt.withUnsafeMutableBufferPointer { tp in
                for c in w { c.withUnsafeBufferPointer { wp in
                    Gemm.runHeads(heads, transB: false, m: 1, n: lora, k: nope, a: qp.baseAddress!, lda: nope, aStride: nope,
                                  b: .bf16(wp.baseAddress!), ldb: lora, bStride: hr, c: tp.baseAddress!, ldc: lora, cStride: lora)
                } }
            } }
        }
        let uv = {
            ol.withUnsafeBufferPointer { lp in o.withUnsafeMutableBufferPointer { op in
                for c in w { c.withUnsafeBufferPointer { wp in
                    Gemm.runHeads(heads, transB: true, m: 1, n: vDim, k: lora, a: lp.baseAddress!, lda: lora, aStride: lora,
                                  b: .bf16(wp.baseAddress! + nope * lora), ldb: lora, bStride: hr, c: op.baseAddress!, ldc: vDim * heads, cStride: vDim)
                } }
            } }
        }
        let t = interleaved(rounds: rounds, [ceiling.read, uk, uv]).map(median)
        if ceiling.sink.isNaN { line("") }
        let readRate = Double(readBytes) / t[0]
        line("\(heads) heads, W_UK [\(nope), \(lora)] and W_UV [\(vDim), \(lora)] per head, bf16, \(copies) copies — median of \(rounds) rounds")
        line("  read ceiling      \(fmt(readRate / 1e9)) GB/s")
        for (name, s, bytes) in [("W_UK (NN)", t[1], heads * nope * lora * 2), ("W_UV (NT)", t[2], heads * vDim * lora * 2)] {
            let per = s / Double(copies), rate = Double(bytes) / per
            line("  \(name)         \(fmt(rate / 1e9)) GB/s = \(fmt(rate / readRate, 2)) of read, \(fmt(per * 1e6, 0)) µs per step")
        }
    }
}
