import TensorCore
import TensorParallel

/// MLA's latent down-projections as one rank holds them: q_a_proj (`[q_lora, hidden]`, none
/// without q_lora) and kv_a_proj_with_mqa (`[kv_lora + rope, hidden]`), held as `scheme` says
/// (`LatentProjection`, tp ranks, n = q_lora + kv_lora + rope):
///
/// | scheme       | partition                                                 | collective                     |
/// |--------------|-----------------------------------------------------------|--------------------------------|
/// | `replicated` | both whole on every rank                                   | —                              |
/// | `column`     | rank r: output rows `[r·q_lora/tp, …)` and `[r·(kv_lora+rope)/tp, …)` (Megatron's column parallel, bias sliced alike) | one all-gather of `[T, n/tp]` |
/// | `sequence`   | both whole; a step that splits its tokens gives rank r a contiguous run of them | one all-gather of `[T/tp, n]` |
///
/// Either gather leaves the whole `qa [T, q_lora]` and `kva [T, kv_lora + rope]` on every rank,
/// before q_a_layernorm and kv_a_layernorm, as a replicated projection would. It moves the
/// activations in their precision (bf16 values as bf16: exact, they are already rounded).
struct LatentProjections {
    /// One down-projection: whole, or this rank's output rows of it.
    enum Held {
        case replicated(ReplicatedLinear)
        case column(ColumnParallelLinear)

        var layer: any ParallelLayer {
            switch self {
            case let .replicated(l): l
            case let .column(l): l
            }
        }

        func forward(_ x: Matrix, into y: inout Matrix, kernels: ProductKernels) throws -> GemmKernel {
            switch self {
            case let .replicated(l): try l.forward(x, into: &y, kernels: kernels)
            case let .column(l): try l.forward(x, into: &y, kernels: kernels)
            }
        }
    }

    let scheme: LatentProjection
    let qA: Held?
    let kvA: Held
    /// The whole latent's widths: q_lora (0 without q_lora) and kv_lora + rope.
    let qWidth: Int
    let kvWidth: Int

    /// Reads rank `shard`'s part of both projections from `source`, each held by `storage` in
    /// `qOrder` / `kvOrder`.
    init(config c: MLAConfig, names: WeightNames, shard: Shard, scheme: LatentProjection, source: WeightSource,
         storage: any WeightStorage.Type, qOrder: WeightOrder, kvOrder: WeightOrder) throws {
        self.scheme = scheme
        let hidden = c.hiddenSize, std = Initializer.random(std: 1 / Float(hidden).squareRoot())
        func held(_ name: String, out: Int, order: WeightOrder) throws -> Held {
            scheme == .column
                ? .column(try ColumnParallelLinear(name: name, inFeatures: hidden, outFeatures: out, bias: c.attentionBias, shard: shard,
                                                   source: source, initializer: std, order: order, storage: storage))
                : .replicated(try ReplicatedLinear(name: name, inFeatures: hidden, outFeatures: out, bias: c.attentionBias,
                                                   source: source, initializer: std, order: order, storage: storage))
        }
        qWidth = c.qLoraRank ?? 0
        kvWidth = c.kvLoraRank + c.qkRopeHeadDim
        qA = try c.qLoraRank.map { try held(names.qAProj, out: $0, order: qOrder) }
        kvA = try held(names.kvAProj, out: kvWidth, order: kvOrder)
    }

    /// The layers in forward order (q_a first).
    var layers: [any ParallelLayer] { (qA.map { [$0.layer] } ?? []) + [kvA.layer] }

    /// Where rank r's values sit in the gathered buffer and in the whole latent: `rows` of qa and
    /// kva, q_a's columns `qCols` then kv_a's `kvCols` per row, from element `offset` on.
    struct Block {
        var rows: Range<Int>
        var qCols: Range<Int>
        var kvCols: Range<Int>
        var offset: Int
        var width: Int { qCols.count + kvCols.count }
        var count: Int { rows.count * width }
    }

    /// Every rank's block of a step of `tokens` tokens: output columns under `column`, runs of
    /// tokens when the step splits them.
    func blocks(tokens T: Int, ranks p: Int, splitTokens: Bool) -> [Block] {
        if splitTokens {
            let counts = LatentProjection.tokenCounts(T, ranks: p)
            var start = 0
            return counts.map { n in
                defer { start += n }
                return Block(rows: start ..< start + n, qCols: 0..<qWidth, kvCols: 0..<kvWidth, offset: start * (qWidth + kvWidth))
            }
        }
        let qs = qWidth / p, ks = kvWidth / p
        return (0..<p).map { r in
            Block(rows: 0..<T, qCols: r * qs ..< (r + 1) * qs, kvCols: r * ks ..< (r + 1) * ks, offset: r * T * (qs + ks))
        }
    }
}
