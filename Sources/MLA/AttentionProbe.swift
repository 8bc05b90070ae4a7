import TensorCore

/// The expanded attention kernel (`AttentionKernel`, the prefill's) on synthetic operands, for
/// the rate probe: one causal sequence of `tokens` queries over themselves on `heads` heads of a
/// config's dimensions, its scores and probabilities stored in `precision` as a layer stores them.
/// Its FLOPs are the kernel's own count, so FLOPs over seconds is the rate the projection gives
/// the `attention` stage.
public final class AttentionProbe {
    public let heads: Int
    public let tokens: Int
    /// GEMM FLOPs of one `run()`.
    public let flops: Int
    private let kernel: AttentionKernel
    private let q: Matrix        // [T, heads·(nope+rope)]
    private let kv: Matrix       // [T, heads·(nope+v)]: head h's k_nope then its v
    private let kRope: Matrix    // [T, rope]
    private var out: Matrix      // [T, heads·v]
    private var scores: [Float]  // [blockRows, T]

    public init(config c: MLAConfig, heads: Int, tokens: Int, precision: Precision) throws(CountOverflow) {
        (self.heads, self.tokens) = (max(heads, 1), max(tokens, 1))
        let scaling = SoftmaxScaling(scale: Rope.softmaxScale(config: c), storing: precision)
        kernel = AttentionKernel(heads: self.heads, nope: c.qkNopeHeadDim, rope: c.qkRopeHeadDim, vDim: c.vHeadDim, scaling: scaling)
        let t = self.tokens, h = self.heads
        // Small values of both signs, so the softmax neither saturates nor underflows.
        q = Matrix(rows: t, cols: h * c.qkHeadDim) { for i in $0.indices { $0[i] = Float(i % 7) * 0.01 - 0.03 } }
        kv = Matrix(rows: t, cols: h * (c.qkNopeHeadDim + c.vHeadDim)) { for i in $0.indices { $0[i] = Float(i % 5) * 0.01 - 0.02 } }
        kRope = Matrix(rows: t, cols: c.qkRopeHeadDim, repeating: 0.01)
        out = Matrix(rows: t, cols: h * c.vHeadDim)
        scores = Array(repeating: 0, count: AttentionKernel.blockRows * t)
        flops = try kernel.flops(nq: t, nk: t)
    }

    /// The last run's output `[T, heads·v]`, row-major.
    public var lastOutput: [Float] { out.storage }

    /// One causal prefill over every head.
    public func run() {
        let nope = kernel.nope, v = kernel.vDim, t = tokens
        q.storage.withUnsafeBufferPointer { qp in kv.storage.withUnsafeBufferPointer { kvp in kRope.storage.withUnsafeBufferPointer { kr in
            out.storage.withUnsafeMutableBufferPointer { op in scores.withUnsafeMutableBufferPointer { sp in
                let o = AttentionKernel.Operands(q: qp.baseAddress!, ldq: heads * (nope + kernel.rope), kNope: kvp.baseAddress!,
                                                 v: kvp.baseAddress! + nope, ldk: heads * (nope + v), headStrideK: nope + v,
                                                 kRope: kr.baseAddress!, ldkr: kernel.rope, out: op.baseAddress!, ldo: heads * v, nq: t, nk: t)
                kernel.run(o, scores: sp.baseAddress!)
            } }
        } } }
    }
}
