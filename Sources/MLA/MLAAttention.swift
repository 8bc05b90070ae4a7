import TensorCore
import TensorParallel

/// One DeepSeek-V3 MLA attention layer with FastDeploy PR #7404's gate, as held by one rank.
///
/// Partition (tp ranks, H heads, rank r holds heads `[r·H/tp, (r+1)·H/tp)`):
///
/// | weight                 | global shape             | layout     | collective |
/// |------------------------|--------------------------|------------|------------|
/// | q_a_proj               | [q_lora, hidden]         | replicated¹| —          |
/// | q_a_layernorm          | [q_lora]                 | replicated | —          |
/// | q_b_proj (or q_proj)   | [H·(nope+rope), q_lora]  | column     | —          |
/// | kv_a_proj_with_mqa     | [kv_lora+rope, hidden]   | replicated¹| —          |
/// | kv_a_layernorm         | [kv_lora]                | replicated | —          |
/// | kv_b_proj              | [H·(nope+v), kv_lora]    | column     | —          |
/// | gate (column layout)   | [H·v, hidden]            | column     | —          |
/// | o_proj                 | [hidden, H·v]            | row        | allreduce  |
///
/// The latent projections feed every head, so the engines replicate them; everything per-head is
/// column-parallel by heads, and the only collective is o_proj's allreduce. ¹ `--latent-proj
/// column` or `sequence` shards them instead, at the cost of one all-gather of the latent before
/// the RMSNorms (`LatentProjections`).
public final class MLAAttention {
    public let config: MLAConfig
    public let shard: Shard
    public let names: WeightNames
    public let gateLayout: GateLayout
    /// How the forward orders its reductions (`--invariant`: the same bits under every layout).
    public let mode: ForwardMode
    /// Heads held by this rank.
    public let localHeads: Int
    /// Global index of this rank's first head.
    public var firstHead: Int { shard.rank * localHeads }
    /// How every projection holds its weights: the one place the layer's numeric format is
    /// chosen. The layers, the attention kernels and each stage's rounding all follow from it.
    public let storage: any WeightStorage.Type
    /// What every stage stores its activations in (the storage's `activations`): f32, or bf16 as
    /// HF's bf16 forward rounds them (docs/precision.md).
    public var precision: Precision { storage.activations }

    enum QPath {
        /// q_a_proj is `down.qA`; its output goes through `norm` and `qB`.
        case lora(norm: AnyVector, qB: ColumnParallelLinear)
        case direct(ColumnParallelLinear)
    }
    enum Gate {
        case column(ColumnParallelLinear)
        case replicated(ReplicatedLinear)
        /// The gate's rows are part of the q projection: each head's `[q_h | g_h]` in `q`.
        case packed
    }

    let qPath: QPath
    /// q_a_proj and kv_a_proj_with_mqa, as `--latent-proj` holds them.
    let down: LatentProjections
    let kvANorm: AnyVector
    let kvB: ColumnParallelLinear
    let gate: Gate?
    let gateActivation: GateActivation
    /// The gate's form (element- or head-wise, separate or packed), from the config.
    public let gateForm: GateForm
    /// Columns per head of `q`: dq, plus the gate's when it is packed into the q projection.
    let qStride: Int
    let oProj: RowParallelLinear
    let rope: Rope
    let kernel: AttentionKernel
    let absorbed: AbsorbedKernel
    let invariant: InvariantAttention
    var workspace = Workspace()
    /// Counts of the last forward (FLOPs issued to BLAS, per stage).
    public internal(set) var counters = ForwardCounters()
    /// When true, every stage's output is checked for NaN/Inf (`NumericError` names the stage).
    public var checkEveryStage = false
    /// When set, each stage's output is hashed per sequence (and per head where split) into it.
    public var stageHashes: StageHashes?
    /// Called mid-forward, after the local attention and before o_proj's collective. Only the
    /// fault-injection switch of the failure tests sets it.
    public var faultHook: (() throws -> Void)?
    /// The cache of the last `serve` call, for reports (tokens each rank holds).
    public internal(set) var lastCache: KVCache?

    /// Builds rank `shard.rank`'s part of layer `layer` with every weight stored in `precision`
    /// (bf16: a bf16 checkpoint's values as they are, anything else rounded to nearest even once).
    public convenience init(config: MLAConfig, layer: Int = 0, shard: Shard, gateLayout: GateLayout = .column,
                            source: WeightSource, precision: Precision = .f32, mode: ForwardMode = .default,
                            latent: LatentProjection = .replicated, padHeads: Bool = false) throws {
        try self.init(config: config, layer: layer, shard: shard, gateLayout: gateLayout, source: source, storage: precision.storage, mode: mode,
                      latent: latent, padHeads: padHeads)
    }

    /// Builds rank `shard.rank`'s part of layer `layer`, asking `source` only for its own blocks,
    /// with every projection held by `storage` and the latent projections as `latent` says. The
    /// invariant mode keeps every forward-only weight `[in, out]`, the order its NN kernel reads.
    /// `padHeads`: a tp that does not divide the heads pads them with zero heads (`padding`).
    public init(config: MLAConfig, layer: Int = 0, shard: Shard, gateLayout: GateLayout = .column,
                source unpadded: WeightSource, storage: any WeightStorage.Type, mode: ForwardMode = .default,
                latent: LatentProjection = .replicated, padHeads: Bool = false) throws {
        try config.validate(tp: shard.size, latent: latent, padHeads: padHeads)
        if mode == .invariant {
            try InvariantLayout.check(quantization: storage.quantization)
            try InvariantLayout.check(heads: config.numAttentionHeads, tp: shard.size)
        }
        self.config = config
        self.storage = storage
        self.mode = mode
        let forwardOnly = mode == .invariant ? .inOut : storage.forwardOrder
        self.shard = shard
        self.gateLayout = gateLayout
        names = WeightNames(layer: layer)
        localHeads = config.localHeads(tp: shard.size)
        let hidden = config.hiddenSize, heads = config.numAttentionHeads, padded = config.paddedHeads(tp: shard.size)
        let std = { (fanIn: Int) in Initializer.random(std: 1 / Float(fanIn).squareRoot()) }
        gateForm = try config.gateForm()
        let packed = config.useGatedAttn && gateForm.placement == .packed
        qStride = config.qRowsPerHead
        let pad = try MLAAttention.padding(config: config, names: names, tp: shard.size, gate: gateLayout, storage: storage)
        let source = pad(unpadded)
        try MLAAttention.checkGate(config: config, form: gateForm, layout: gateLayout, names: names, source: source)
        // A packed q projection is read through the packing the layout assumes (the config's own
        // unless --gate says otherwise); its rows reach each rank as [q_h | g_h] per head.
        let qName = (config.qLoraRank == nil ? names.qProj : names.qBProj) + ".weight"
        let qSource: WeightSource = packed
            ? pad(RowMappedSource(unpadded, name: qName, map: { [dq = config.qkHeadDim, w = config.gateWidthPerHead,
                                                          p = gateLayout.assumedPacking(stored: gateForm.packing)] in
                GateForm.storedRow($0, packing: p, heads: heads, dq: dq, w: w) }))
            : source
        // kv_a is narrow (576 outputs): kept [out, in], a decode token's product streams it as dot
        // products, measured 1.3–1.6× faster than x·W over [in, 576]; its prefill GEMM, under 3%
        // of the layer's FLOPs, packs about 5% slower that way.
        down = try LatentProjections(config: config, names: names, shard: shard, scheme: latent, source: source, storage: storage,
                                     qOrder: forwardOnly, kvOrder: mode == .invariant ? .inOut : .outIn)
        if let qLora = config.qLoraRank {
            qPath = .lora(
                norm: AnyVector(try source.vector(names.qALayernorm, count: qLora, range: 0..<qLora, initializer: .nearOne(spread: 0.1)),
                                storedAs: storage.activations),
                qB: try ColumnParallelLinear(name: names.qBProj, inFeatures: qLora, outFeatures: padded * qStride, bias: false, shard: shard,
                                             source: qSource, initializer: std(qLora), order: forwardOnly, storage: storage))
        } else {
            qPath = .direct(try ColumnParallelLinear(name: names.qProj, inFeatures: hidden, outFeatures: padded * qStride, bias: false,
                                                     shard: shard, source: qSource, initializer: std(hidden), order: forwardOnly, storage: storage))
        }
        kvANorm = AnyVector(try source.vector(names.kvALayernorm, count: config.kvLoraRank, range: 0..<config.kvLoraRank,
                                              initializer: .nearOne(spread: 0.1)), storedAs: storage.activations)
        // kv_b_proj's rows are W_UK and W_UV, which the absorbed kernels read themselves: held in a
        // format they read (fp8 dequantized to bf16 once here, as vLLM's MLA backend does).
        kvB = try ColumnParallelLinear(name: names.kvBProj, inFeatures: config.kvLoraRank,
                                       outFeatures: padded * (config.qkNopeHeadDim + config.vHeadDim), bias: false, shard: shard,
                                       source: source, initializer: std(config.kvLoraRank), storage: storage.kernelOperandStorage)
        gateActivation = config.useGatedAttn ? try config.gateActivation() : .sigmoid
        let gateOut = padded * config.gateWidthPerHead
        if !config.useGatedAttn {
            gate = nil
        } else if packed {
            gate = .packed
        } else if gateLayout == .column {
            gate = .column(try ColumnParallelLinear(name: names.gate, inFeatures: hidden, outFeatures: gateOut, bias: config.useBias, shard: shard,
                                                    source: source, initializer: std(hidden), order: forwardOnly, storage: storage))
        } else {
            gate = .replicated(try ReplicatedLinear(name: names.gate, inFeatures: hidden, outFeatures: gateOut, bias: config.useBias,
                                                    source: source, initializer: std(hidden), order: forwardOnly, storage: storage))
        }
        oProj = try RowParallelLinear(name: names.oProj, inFeatures: padded * config.vHeadDim, outFeatures: hidden, bias: config.oProjBias, shard: shard,
                                      source: source, initializer: std(config.attnOutWidth), order: forwardOnly, storage: storage)
        rope = Rope(config: config)
        // One scaling for both kernels: the softmax scale, and the storage's precision for scores and probabilities.
        let scaling = SoftmaxScaling(scale: Rope.softmaxScale(config: config), storing: storage.activations)
        kernel = AttentionKernel(heads: localHeads, nope: config.qkNopeHeadDim, rope: config.qkRopeHeadDim,
                                 vDim: config.vHeadDim, scaling: scaling, qStride: qStride)
        absorbed = AbsorbedKernel(heads: localHeads, nope: config.qkNopeHeadDim, rope: config.qkRopeHeadDim, vDim: config.vHeadDim,
                                  lora: config.kvLoraRank, scaling: scaling, qStride: qStride)
        invariant = InvariantAttention(heads: localHeads, nope: config.qkNopeHeadDim, rope: config.qkRopeHeadDim, vDim: config.vHeadDim,
                                       lora: config.kvLoraRank, scale: scaling.scale, precision: storage.activations, qStride: qStride)
    }

    /// Every parallel layer this rank holds, in forward order (for the plan and memory report).
    public var layers: [ParallelLayer] {
        var list: [ParallelLayer] = []
        switch qPath {
        case let .lora(_, qB): list += [down.qA!.layer, qB]
        case let .direct(q): list.append(q)
        }
        list += [down.kvA.layer, kvB]
        switch gate {
        case let .column(g): list.append(g)
        case let .replicated(g): list.append(g)
        case .packed, nil: break
        }
        list.append(oProj)
        return list
    }

    /// Bytes of every weight this rank holds (norm weights included), in their precision.
    public var weightBytes: Int {
        var norms = kvANorm.bytes
        if case let .lora(norm, _) = qPath { norms += norm.bytes }
        return layers.reduce(0) { $0 + $1.localBytes } + norms
    }
}

extension MLAAttention {
    /// Every tensor this rank holds under its HF name, with its local shape (norm weights included),
    /// in forward order. At tp = 1 this is the whole layer, as `init` writes it to a checkpoint.
    public var namedTensors: [(name: String, shape: [Int], values: [Float])] {
        var list: [(String, [Int], [Float])] = []
        func add(_ name: String, _ stored: AnyMatrix, _ bias: AnyVector?) {
            let weight = stored.widened()
            list.append((name + ".weight", [weight.rows, weight.cols], weight.storage))
            if let bias { list.append((name + ".bias", [bias.count], bias.widened())) }
        }
        // A packed q projection is held per head [q_h | g_h]; it is written in the order the
        // config declares (gated_attn_packing), so that reading it back gives the same layer.
        func stored(_ held: AnyMatrix) -> AnyMatrix {
            guard gate?.isPacked == true, gateForm.packing == .concatenated else { return held }
            let w = held.widened()
            var out = Matrix(rows: w.rows, cols: w.cols)
            for r in 0..<w.rows {
                let to = GateForm.storedRow(r, packing: .concatenated, heads: w.rows / qStride, dq: config.qkHeadDim, w: config.gateWidthPerHead)
                out.storage.replaceSubrange(to * w.cols ..< (to + 1) * w.cols, with: w.storage[r * w.cols ..< (r + 1) * w.cols])
            }
            return .f32(out)
        }
        switch qPath {
        case let .lora(norm, qB):
            let qA = down.qA!.layer
            add(qA.name, qA.weightOutIn, qA.bias)
            list.append((names.qALayernorm, [norm.count], norm.widened()))
            add(qB.name, stored(qB.weightOutIn), qB.bias)
        case let .direct(q):
            add(q.name, stored(q.weightOutIn), q.bias)
        }
        add(down.kvA.layer.name, down.kvA.layer.weightOutIn, down.kvA.layer.bias)
        list.append((names.kvALayernorm, [kvANorm.count], kvANorm.widened()))
        add(kvB.name, kvB.weight, kvB.bias)
        switch gate {
        case let .column(g): add(g.name, g.weightOutIn, g.bias)
        case let .replicated(g): add(g.name, g.weightOutIn, g.bias)
        case .packed, nil: break
        }
        add(oProj.name, oProj.weightOutIn, oProj.bias)
        return list
    }
}
