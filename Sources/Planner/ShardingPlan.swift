import MLA
import TensorCore
import TensorParallel

/// What each rank holds and moves for one layer at a given tp and gate layout, computed from
/// the config alone (no MPI, no weights): the source for `plan`, the run report and `bench`.
public struct ShardingPlan: Codable, Sendable {
    public struct Weight: Codable, Sendable {
        public var name: String
        public var layout: Layout
        public var globalShape: [Int]
        public var localShape: [Int]
        /// Bytes one rank holds (in the plan's precision).
        public var bytesPerRank: Int
        /// Split by heads (its padding, if any, is zeros); nil in plans made before padding.
        public var perHead: Bool?
    }

    public var tp: Int
    public var gate: GateLayout
    /// What the weights are stored in (nil: f32, as plans made before bf16 read).
    public var precision: Precision?
    /// `--quantization` (nil: none). Under fp8 each projection a run holds in fp8 counts one byte
    /// per element plus four per 128×128 tile its block touches (the busiest rank's), kv_b_proj
    /// two per element (dequantized to bf16 for the absorbed kernels), norms and biases two.
    public var quantization: WeightQuantization?
    /// How q_a_proj and kv_a_proj_with_mqa are held (nil: replicated, as plans made before the
    /// choice existed read).
    public var latent: LatentProjection?
    public var weights: [Weight]
    /// Heads the ranks hold together when tp does not divide the model's (zero heads pad them to
    /// a multiple of tp; nil: no padding).
    public var paddedHeads: Int?
    /// The model's heads (nil in plans made before padding).
    public var modelHeads: Int?
    /// Whether this layout runs at this tp (the replicated gate does not for tp > 1).
    public var runs: Bool

    public init(config c: MLAConfig, tp: Int, gate: GateLayout, layer: Int = 0, precision: Precision = .f32,
                quantization: WeightQuantization? = nil, latent: LatentProjection = .replicated) {
        self.tp = tp
        self.gate = gate
        self.latent = latent == .replicated ? nil : latent
        let down: Layout = latent == .column ? .column : .replicated
        let fp8 = quantization == .fp8
        let precision = fp8 ? .bf16 : precision
        self.precision = precision == .f32 ? nil : precision
        self.quantization = fp8 ? .fp8 : nil
        let size = precision.bytesPerElement
        let n = WeightNames(layer: layer), H = c.numAttentionHeads, Hp = c.paddedHeads(tp: tp)
        paddedHeads = Hp == H ? nil : Hp
        modelHeads = H
        // A per-head weight's split axis holds Hp heads (zero rows or columns beyond H).
        func w(_ name: String, _ layout: Layout, _ out: Int, _ inF: Int, perHead: Bool = false) -> Weight {
            let local: [Int]
            switch layout {
            case .replicated: local = [out, inF]
            case .column: local = [(perHead ? out / H * Hp : out) / tp, inF]
            case .row: local = [out, (perHead ? inF / H * Hp : inF) / tp]
            }
            let inFP8 = fp8 && Self.heldInFP8(name, config: c, layer: layer)
            let bytes = inFP8 ? Self.fp8Bytes(layout, out: out, in: inF, tp: tp, block: c.fp8BlockSize) : size * local[0] * local[1]
            return Weight(name: name, layout: layout, globalShape: [out, inF], localShape: local, bytesPerRank: bytes,
                          perHead: perHead && layout != .replicated ? true : nil)
        }
        func v(_ name: String, _ layout: Layout, _ count: Int, perHead: Bool = false) -> Weight {
            let local = layout == .replicated ? count : (perHead ? count / H * Hp : count) / tp
            return Weight(name: name, layout: layout, globalShape: [count], localShape: [local], bytesPerRank: size * local,
                          perHead: perHead && layout != .replicated ? true : nil)
        }
        var list: [Weight] = []
        if let q = c.qLoraRank {
            list.append(w(n.qAProj + ".weight", down, q, c.hiddenSize))
            if c.attentionBias { list.append(v(n.qAProj + ".bias", down, q)) }
            list.append(v(n.qALayernorm, .replicated, q))
            list.append(w(n.qBProj + ".weight", .column, H * c.qRowsPerHead, q, perHead: true))
        } else {
            list.append(w(n.qProj + ".weight", .column, H * c.qRowsPerHead, c.hiddenSize, perHead: true))
        }
        list.append(w(n.kvAProj + ".weight", down, c.kvLoraRank + c.qkRopeHeadDim, c.hiddenSize))
        if c.attentionBias { list.append(v(n.kvAProj + ".bias", down, c.kvLoraRank + c.qkRopeHeadDim)) }
        list.append(v(n.kvALayernorm, .replicated, c.kvLoraRank))
        list.append(w(n.kvBProj + ".weight", .column, H * (c.qkNopeHeadDim + c.vHeadDim), c.kvLoraRank, perHead: true))
        if c.hasSeparateGate {                                          // a packed gate is in q instead
            let layout: Layout = gate == .column ? .column : .replicated
            list.append(w(n.gate + ".weight", layout, H * c.gateWidthPerHead, c.hiddenSize, perHead: true))
            if c.useBias { list.append(v(n.gate + ".bias", layout, H * c.gateWidthPerHead, perHead: true)) }
        }
        list.append(w(n.oProj + ".weight", .row, c.hiddenSize, c.attnOutWidth, perHead: true))
        if c.oProjBias { list.append(v(n.oProj + ".bias", .replicated, c.hiddenSize)) }
        weights = list
        runs = !(c.useGatedAttn && gate == .replicated && tp > 1)
    }

    /// Whether the weight `name` is held in fp8 under `--quantization fp8`: every projection but
    /// kv_b_proj (which the absorbed decode multiplies per head, in bf16), and of a checkpoint
    /// quantized as DeepSeek's only the modules it stores in fp8.
    public static func heldInFP8(_ name: String, config c: MLAConfig, layer: Int = 0) -> Bool {
        !name.hasPrefix(WeightNames(layer: layer).kvBProj + ".") && (c.quantMethod != "fp8" || WeightNames.isFP8Module(name))
    }

    /// The most bytes a rank holds of an `[out, in]` weight in fp8 under `layout`: a byte per
    /// element and an f32 scale per tile its block touches (a block whose edge falls inside a tile
    /// keeps that tile's scale, so ranks can differ by a scale row or column).
    static func fp8Bytes(_ layout: Layout, out: Int, in inF: Int, tp: Int, block: Int) -> Int {
        let ranks = layout == .replicated ? 1 : tp
        return (0..<ranks).map { r in
            let rows = layout == .column ? r * out / tp ..< (r + 1) * out / tp : 0..<out
            let cols = layout == .row ? r * inF / tp ..< (r + 1) * inF / tp : 0..<inF
            let tiles = FP8BlockMatrix.tiles(first: rows.lowerBound, count: rows.count, blockSize: block).count
                * FP8BlockMatrix.tiles(first: cols.lowerBound, count: cols.count, blockSize: block).count
            return rows.count * cols.count + 4 * tiles
        }.max() ?? 0
    }

    /// Bytes of weights one rank holds.
    public var bytesPerRank: Int { weights.reduce(0) { $0 + $1.bytesPerRank } }
    /// Bytes of the replicated weights (held by every rank).
    public var replicatedBytes: Int { weights.filter { $0.layout == .replicated }.reduce(0) { $0 + $1.bytesPerRank } }
    /// Bytes of this rank's shards of the column/row weights.
    public var shardedBytes: Int { bytesPerRank - replicatedBytes }

    /// The real heads rank r holds (its padding heads, if any, come after them).
    public static func heads(rank: Int, tp: Int, config: MLAConfig) -> Range<Int> {
        config.realHeads(rank: rank, tp: tp)
    }

    /// Bytes of zero weights the job holds for padded heads, over all ranks: each padded head's
    /// share of every weight split by heads (0 without padding).
    public var paddingBytes: Int {
        guard let Hp = paddedHeads else { return 0 }
        let perHead = weights.filter { $0.perHead == true }.reduce(0) { $0 + $1.bytesPerRank } * tp / Hp   // one head's bytes
        return perHead * (Hp - (modelHeads ?? Hp))
    }

    /// Payload bytes of the one allreduce per forward (o_proj's `[T, hidden]` partials; f32 unless
    /// the reduction runs in bf16).
    public static func allReduceBytes(tokens: Int, config: MLAConfig, bytesPerElement: Int = 4) -> Int {
        bytesPerElement * tokens * config.hiddenSize
    }

    /// Bytes each rank sends in a ring allreduce of `n` bytes over p ranks: 2(p−1)/p · n.
    public static func ringBytesPerRank(_ n: Int, tp: Int) -> Int { tp <= 1 ? 0 : 2 * (tp - 1) * n / tp }
}
