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
        q = .probeOperand(rows: t, cols: h * c.qkHeadDim, period: 7)
        kv = .probeOperand(rows: t, cols: h * (c.qkNopeHeadDim + c.vHeadDim), period: 5)
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

/// The absorbed decode kernel (`AbsorbedKernel`, a decode step's attention) on synthetic
/// operands, for the rate probe: one query of each of `heads` heads over `cached` cached rows,
/// W_UK and W_UV read from a kv_b_proj slice held in `precision`. It streams that slice and the
/// cache, so its rate is bytes over seconds: `bytes` counts the slice at the precision's element
/// size and the cached rows at 4 bytes (held f32 here), as the plan counts the stage.
public final class AbsorbedProbe {
    public let heads: Int
    public let cached: Int
    /// Bytes one `run()` streams: the heads' W_UK and W_UV rows, and the cached rows.
    public let bytes: Int
    private let kernel: AbsorbedKernel
    private let q: Matrix          // [1, heads·(nope+rope)]
    private let kvB: AnyMatrix     // [heads·(nope+v), lora]
    private let keys: Matrix       // [cached, lora+rope]
    private var out: Matrix        // [1, heads·v]
    private var work: [Float]

    public init(config c: MLAConfig, heads: Int, cached: Int, precision: Precision) {
        (self.heads, self.cached) = (max(heads, 1), max(cached, 1))
        let h = self.heads, nk = self.cached, lora = c.kvLoraRank, width = lora + c.qkRopeHeadDim
        kernel = AbsorbedKernel(heads: h, nope: c.qkNopeHeadDim, rope: c.qkRopeHeadDim, vDim: c.vHeadDim, lora: lora,
                                scaling: SoftmaxScaling(scale: Rope.softmaxScale(config: c), storing: precision))
        q = .probeOperand(rows: 1, cols: h * c.qkHeadDim, period: 7)
        let w = Matrix.probeOperand(rows: h * (c.qkNopeHeadDim + c.vHeadDim), cols: lora, period: 5)
        kvB = AnyMatrix(w, storedAs: precision)
        keys = .probeOperand(rows: nk, cols: width, period: 3)
        out = Matrix(rows: 1, cols: h * c.vHeadDim)
        work = Array(repeating: 0, count: kernel.workspaceCount(nq: 1, nk: nk))
        bytes = w.rows * lora * precision.bytesPerElement + nk * width * 4
    }

    /// The last run's output `[1, heads·v]`.
    public var lastOutput: [Float] { out.storage }

    /// One decode step's attention over every head.
    public func run() {
        let ldq = q.cols, ldo = out.cols
        keys.storage.withUnsafeBufferPointer { kp in
            let rows = CachedRows(rows: kp.baseAddress!, count: cached, width: keys.cols)
            q.storage.withUnsafeBufferPointer { qp in kvB.withGemmSource { wb in
                out.storage.withUnsafeMutableBufferPointer { op in work.withUnsafeMutableBufferPointer { wp in
                    _ = kernel.run(q: qp.baseAddress!, ldq: ldq, keys: rows, kvB: wb, out: op.baseAddress!, ldo: ldo, nq: 1, work: wp.baseAddress!)
                } }
            } }
        }
    }
}

extension Matrix {
    /// A probe's operand: small values of both signs repeating every `period` elements, so the
    /// softmax neither saturates nor underflows.
    fileprivate static func probeOperand(rows: Int, cols: Int, period: Int) -> Matrix {
        Matrix(rows: rows, cols: cols) { for i in $0.indices { $0[i] = Float(i % period - period / 2) * 0.01 } }
    }
}
