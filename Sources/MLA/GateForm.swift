import TensorCore

/// Which gate a layer has, from its config: how many values per head, and where its weight lives.
///
/// | granularity, placement | weight                                           | gate input            |
/// |------------------------|--------------------------------------------------|-----------------------|
/// | element, separate      | `gate.weight [H·v, hidden]` (+ bias `[H·v]`)       | hidden_states         |
/// | head, separate         | `gate.weight [H, hidden]` (+ bias `[H]`)           | hidden_states         |
/// | element, packed        | rows of `q_b_proj [H·(dq+v), q_lora]` (or q_proj)  | the q projection's input |
/// | head, packed           | rows of `q_b_proj [H·(dq+1), q_lora]` (or q_proj)  | the q projection's input |
///
/// Packed rows are stored per head, `[q_h (dq rows) | g_h (w rows)]` (Qwen3-Next's order,
/// `gated_attn_packing: interleaved`), or as `[all q | all g]` (`concatenated`). Every form is
/// column-parallel with the heads: rank r takes its heads' gate rows, or its heads' packed rows.
public struct GateForm: Equatable, Sendable, CustomStringConvertible {
    public enum Granularity: String, CaseIterable, Sendable, Codable { case element, head }
    public enum Placement: String, CaseIterable, Sendable, Codable { case separate, packed }
    public enum Packing: String, CaseIterable, Sendable, Codable { case interleaved, concatenated }

    public var granularity: Granularity
    public var placement: Placement
    public var packing: Packing

    public init(granularity: Granularity = .element, placement: Placement = .separate, packing: Packing = .interleaved) {
        self.granularity = granularity
        self.placement = placement
        self.packing = packing
    }

    /// Gate values per head: v (element-wise) or 1 (head-wise).
    public func width(_ c: MLAConfig) -> Int { granularity == .element ? c.vHeadDim : 1 }

    public var description: String {
        "\(granularity.rawValue)-wise, \(placement == .separate ? "separate" : "packed into the q projection (\(packing.rawValue))")"
    }

    /// Where packed row `logical` of a per-head interleaved `[H·(dq+w), in]` tensor is stored
    /// under `packing`: row i of head h is a query row for i < dq, a gate row after.
    public static func storedRow(_ logical: Int, packing: Packing, heads: Int, dq: Int, w: Int) -> Int {
        guard packing == .concatenated else { return logical }
        let h = logical / (dq + w), i = logical % (dq + w)
        return i < dq ? h * dq + i : heads * dq + h * w + (i - dq)
    }
}

extension MLAConfig {
    /// The gate's form, or an error naming the key and the values it takes.
    public func gateForm() throws -> GateForm {
        func parse<T: RawRepresentable & CaseIterable>(_ type: T.Type, _ key: String, _ value: String) throws -> T where T.RawValue == String {
            guard let v = T(rawValue: value) else {
                throw ConfigError.unknownGateForm(key: key, value: value, allowed: T.allCases.map(\.rawValue))
            }
            return v
        }
        return GateForm(granularity: try parse(GateForm.Granularity.self, "gated_attn_granularity", gatedAttnGranularity),
                        placement: try parse(GateForm.Placement.self, "gated_attn_placement", gatedAttnPlacement),
                        packing: try parse(GateForm.Packing.self, "gated_attn_packing", gatedAttnPacking))
    }

    /// Gate values per head of the configured form (0 without a gate).
    public var gateWidthPerHead: Int { useGatedAttn ? ((try? gateForm())?.width(self) ?? vHeadDim) : 0 }

    /// Whether the gate is a projection of its own (a packed gate runs inside the q projection).
    public var hasSeparateGate: Bool { useGatedAttn && qRowsPerHead == qkHeadDim }

    /// Rows per head of the q projection: dq, plus the gate's rows when it is packed there.
    public var qRowsPerHead: Int {
        useGatedAttn && (try? gateForm())?.placement == .packed ? qkHeadDim + gateWidthPerHead : qkHeadDim
    }
}

/// A checkpoint gate tensor whose shape fits no form the config could declare: an input error
/// that names the shape and the forms it could have had.
public struct GateShapeError: Error, Equatable, CustomStringConvertible {
    public var tensor: String
    public var found: [Int]
    public var declared: String
    public var forms: [(String, [Int])]

    public static func == (a: GateShapeError, b: GateShapeError) -> Bool {
        a.tensor == b.tensor && a.found == b.found && a.declared == b.declared
    }

    public var description: String {
        let list = forms.map { "\($0.0) \(Shape($0.1))" }.joined(separator: ", ")
        return "\(tensor) has shape \(Shape(found)), which does not fit the declared \(declared) gate — the forms this config could have: "
            + "\(list); set gated_attn_granularity / gated_attn_placement to the checkpoint's form"
    }
}
