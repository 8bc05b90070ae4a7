/// How MLA's latent down-projections (q_a_proj and kv_a_proj_with_mqa, `[q_lora, hidden]` and
/// `[kv_lora + rope, hidden]`) are held over a tensor-parallel group (`--latent-proj`, or a
/// layout name's `-latcol` / `-latseq`).
///
/// | value        | weight on rank r of tp                      | rows computed          | collective                     |
/// |--------------|---------------------------------------------|------------------------|--------------------------------|
/// | `replicated` | all of both (vLLM, SGLang, FastDeploy)      | every token            | —                              |
/// | `column`     | output rows `[r·n/tp, (r+1)·n/tp)` of each  | every token, n/tp cols | all-gather of `[T, n/tp]`      |
/// | `sequence`   | all of both                                 | its share of the tokens (a prefill of ≥ tp tokens) | all-gather of `[T/tp, n]` |
///
/// with n = q_lora + kv_lora + rope (kv_lora + rope without q_lora). Either sharded form makes
/// one all-gather per forward, before q_a_layernorm and kv_a_layernorm, so every rank then holds
/// the whole latent, as replicated.
public enum LatentProjection: String, CaseIterable, Codable, Sendable {
    case replicated
    case column
    case sequence

    /// The suffix a layout name carries for it (`tp8-latcol`).
    public var layoutSuffix: String {
        switch self {
        case .replicated: ""
        case .column: "-latcol"
        case .sequence: "-latseq"
        }
    }

    /// The value a layout name's suffix (`latcol`, `latseq`, after its `-`) stands for.
    init?(suffix: Substring) {
        switch suffix {
        case "latcol": self = .column
        case "latseq": self = .sequence
        default: return nil
        }
    }

    /// Whether a step of `tokens` tokens over a tp group of `ranks` splits its tokens between
    /// the ranks: the sequence form in a step that is not decode only (`decodeOnly`: every
    /// sequence has one new token after a cached prefix) with at least one token per rank.
    /// Every other step computes the down-projections replicated and makes no collective.
    public func splitsTokens(_ tokens: Int, ranks: Int, decodeOnly: Bool) -> Bool {
        self == .sequence && ranks > 1 && !decodeOnly && tokens >= ranks
    }

    /// Whether a serving step is decode only: every sequence brings one new token after a cached
    /// prefix (`newTokens[b]` after `cached[b]`). The runtime and the plan both ask this.
    public static func isDecodeOnly(newTokens: [Int], cached: [Int]) -> Bool {
        zip(newTokens, cached).allSatisfy { $0 == 1 && $1 > 0 }
    }

    /// The tokens of a step each rank computes under the sequence form: contiguous runs, the first
    /// `tokens mod ranks` ranks one more than the others.
    public static func tokenCounts(_ tokens: Int, ranks: Int) -> [Int] {
        (0..<ranks).map { tokens / ranks + ($0 < tokens % ranks ? 1 : 0) }
    }
}
