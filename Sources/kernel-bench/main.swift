// kernel-bench: measures TensorCore's GEMM paths on this machine (one thread), and checks which
// kernel serves bf16 products under the oneDNN ISA this process runs with (DNNL_MAX_CPU_ISA).
//   kernel-bench gemm [rounds]     GFLOP/s per path at [256, 7168]·[7168, 8192] and MLA's prefill shapes
//   kernel-bench decode [rounds]   weight GB/s of one-row and small-batch products against memcpy
//                                  (KERNEL_BENCH_SHAPES="m,n,k,transB;…" for other shapes)
//   kernel-bench one m n k transB [rounds]   one product shape
//   kernel-bench heads [rounds]    the absorbed decode's W_UK and W_UV over 64 heads (deepseek-v3, tp = 2)
//   kernel-bench overhead          the per-call cost of Gemm.run on a tiny bf16 product
//   kernel-bench route             one line per route: the kernel that ran and its error (used by the tests)
import Foundation
import TensorCore

BLAS.defaultToOneThreadPerRank()
let args = CommandLine.arguments.dropFirst()
let rounds = args.dropFirst().first.flatMap(Int.init) ?? 7   // gemm, decode

switch args.first {
case "gemm":
    line(conditions())
    // deepseek-v3 at tp = 2, T = 256: the projections' local shapes (out, in) and the order each is kept in.
    let shapes: [(String, Int, Int, Bool)] = [
        ("gate (issue shape)", 8192, 7168, false), ("q_a_proj", 1536, 7168, false), ("q_b_proj", 12288, 1536, false),
        ("kv_a_proj", 576, 7168, true), ("kv_b_proj", 16384, 512, true), ("o_proj", 7168, 8192, false),
        ("gate as [out, in]", 8192, 7168, true),
    ]
    for (name, out, inF, transB) in shapes {
        line(name)
        GemmBench(m: 256, n: out, k: inF, transB: transB, rounds: rounds).run()
    }
    for m in [8, 16, 32] {
        line("small batch")
        GemmBench(m: m, n: 8192, k: 7168, transB: true, rounds: rounds).run()
    }
case "one":    // kernel-bench one m n k transB rounds: one shape
    let v = args.dropFirst().compactMap { Int($0) }
    line(conditions())
    GemmBench(m: v[0], n: v[1], k: v[2], transB: v[3] != 0, rounds: v.count > 4 ? v[4] : 5).run()
case "decode":
    line(conditions())
    let only = ProcessInfo.processInfo.environment["KERNEL_BENCH_ONLY"].map { $0.split(separator: ",").compactMap { Int($0) } }
    let shapes = ProcessInfo.processInfo.environment["KERNEL_BENCH_SHAPES"].map {
        $0.split(separator: ";").map { $0.split(separator: ",").compactMap { Int($0) } }.filter { $0.count == 4 }
            .map { ($0[0], $0[1], $0[2], $0[3] != 0) }
    }
    let cases: [(Int, Int, Int, Bool)] = shapes ?? [
        (1, 24576, 7168, true), (1, 24576, 7168, false), (1, 576, 2048, true), (1, 576, 2048, false),
        (1, 8192, 7168, false), (1, 1536, 7168, false), (1, 576, 7168, true), (1, 12288, 1536, false), (1, 7168, 8192, false),
        (2, 24576, 7168, true), (4, 24576, 7168, true), (8, 24576, 7168, true),
        (2, 24576, 7168, false), (4, 24576, 7168, false), (8, 24576, 7168, false),
        (1, 512, 128, false), (1, 128, 512, true),     // the absorbed decode's per-head W_UK and W_UV products
    ]
    for (index, (m, n, k, transB)) in cases.enumerated() where only?.contains(index) ?? true {
        DecodeBench(m: m, n: n, k: k, transB: transB, rounds: rounds, streamBytes: 256 << 20).run(memcpyBytes: 64 << 20)
    }
case "heads":      // the absorbed decode's W_UK and W_UV over every local head (deepseek-v3, tp = 2)
    line(conditions())
    HeadsBench(heads: 64, nope: 128, vDim: 128, lora: 512, rounds: rounds, streamBytes: 256 << 20).run(readBytes: 64 << 20)
case "overhead":   // per-call cost of Gemm.run on a tiny bf16 product
    let x = values(16, seed: 1), w = BF16.round(values(256, seed: 2))
    var y = [Float](repeating: 0, count: 16)
    for route in [GemmRoute.automatic] {
        let t0 = now()
        for _ in 0..<100_000 {
            x.withUnsafeBufferPointer { xp in w.withUnsafeBufferPointer { wp in y.withUnsafeMutableBufferPointer { yp in
                _ = Gemm.run(transB: true, m: 1, n: 16, k: 16, a: .f32(xp.baseAddress!), lda: 16, b: .bf16(wp.baseAddress!), ldb: 16,
                             c: .f32(yp.baseAddress!), ldc: 16, route: route)
            } } }
        }
        line("\(route): \(fmt((now() - t0) / 100_000 * 1e6, 3)) µs per call")
    }
case "route":
    RouteCheck.run()
default:
    line("usage: kernel-bench gemm|decode|route [rounds]")
    exit(2)
}
