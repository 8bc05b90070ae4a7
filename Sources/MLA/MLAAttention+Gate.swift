import TensorCore
import TensorParallel

extension MLAAttention {
    /// Before any weight is read: the `--gate` layout must suit the gate's form, and a checkpoint's
    /// gate tensor (or packed q projection) must have the shape of the form the config declares.
    static func checkGate(config c: MLAConfig, form: GateForm, layout: GateLayout, names: WeightNames, source: WeightSource) throws {
        guard c.useGatedAttn else { return }
        let packedLayout = layout == .packedAsInterleaved || layout == .packedAsConcatenated
        if form.placement == .packed && !(layout == .column || packedLayout) {
            throw GateLayoutError(layout: layout, form: form)
        }
        if form.placement == .separate && packedLayout { throw GateLayoutError(layout: layout, form: form) }
        let H = c.numAttentionHeads, v = c.vHeadDim, dq = c.qkHeadDim
        let qName = (c.qLoraRank == nil ? names.qProj : names.qBProj) + ".weight"
        let qIn = c.qLoraRank ?? c.hiddenSize, hidden = c.hiddenSize
        let forms: [(String, [Int])] = [
            ("element-wise separate: \(names.gate).weight", [H * v, hidden]),
            ("head-wise separate: \(names.gate).weight", [H, hidden]),
            ("element-wise packed: \(qName)", [H * (dq + v), qIn]),
            ("head-wise packed: \(qName)", [H * (dq + 1), qIn]),
        ]
        let declared = form.description
        let (tensor, want) = form.placement == .separate ? (names.gate + ".weight", [H * form.width(c), hidden])
                                                         : (qName, [H * (dq + form.width(c)), qIn])
        if let found = source.shape(of: tensor), found != want {
            throw GateShapeError(tensor: tensor, found: found, declared: declared, forms: forms)
        }
        // A separate gate declared, but the q projection carries gate rows: the same mistake the other way.
        if form.placement == .separate, let q = source.shape(of: qName), q != [H * dq, qIn], forms.contains(where: { $0.1 == q }) {
            throw GateShapeError(tensor: qName, found: q, declared: declared, forms: [("no gate rows", [H * dq, qIn])] + forms)
        }
    }
}

/// A `--gate` layout that does not apply to the config's gate form (a usage error).
public struct GateLayoutError: Error, Equatable, CustomStringConvertible {
    public var layout: GateLayout
    public var form: GateForm

    public var description: String {
        form.placement == .packed
            ? "--gate \(layout.rawValue) splits a separate gate, but this gate is \(form) — use --gate column, or packed-as-interleaved / packed-as-concatenated to split the packed q projection another way"
            : "--gate \(layout.rawValue) splits a gate packed into the q projection, but this gate is \(form) — use --gate column, replicated or replicated-sliced"
    }
}
