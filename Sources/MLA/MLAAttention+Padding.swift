import TensorCore
import TensorParallel

extension MLAAttention {
    /// Heads of this rank that are real (not padding): all of them unless tp does not divide the heads.
    public var realHeads: Range<Int> { config.realHeads(rank: shard.rank, tp: shard.size) }

    /// Zero heads this rank holds beyond the model's (`--pad-heads`).
    public var paddingHeads: Int { localHeads - realHeads.count }

    /// How a layer at `tp` reads its per-head weights: as they are when tp divides the heads;
    /// otherwise padded to `config.paddedHeads(tp:)` heads with zeros (`HeadPaddedSource`: rows of
    /// q_b_proj / q_proj, kv_b_proj and the gate, columns of o_proj), as SGLang pads. Throws for
    /// what padding cannot serve: fp8 weights (a padded tile would need its own scales) and a gate
    /// not split with the heads.
    static func padding(config c: MLAConfig, names: WeightNames, tp: Int, gate: GateLayout,
                        storage: any WeightStorage.Type) throws -> (WeightSource) -> WeightSource {
        let H = c.numAttentionHeads
        guard c.paddedHeads(tp: tp) != H else { return { $0 } }
        if storage.quantization == .fp8 {
            throw ConfigError.paddingUnsupported(heads: H, tp: tp, what: "--quantization fp8",
                                                 remedy: "use --dtype bf16, or a tp that divides the heads")
        }
        if c.useGatedAttn && c.hasSeparateGate && gate != .column {
            throw ConfigError.paddingUnsupported(heads: H, tp: tp, what: "--gate \(gate.rawValue)", remedy: "use --gate column")
        }
        var rows = [c.qLoraRank == nil ? names.qProj : names.qBProj: H * c.qRowsPerHead, names.kvBProj: H * (c.qkNopeHeadDim + c.vHeadDim)]
        if c.useGatedAttn && c.hasSeparateGate { rows[names.gate] = H * c.gateWidthPerHead }
        let columns = [names.oProj: H * c.vHeadDim]
        return { HeadPaddedSource($0, rows: rows, columns: columns) }
    }
}
