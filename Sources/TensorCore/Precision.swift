/// The element type weights, activations and the cache are held in.
public enum Precision: String, CaseIterable, Codable, Sendable {
    case f32, bf16

    /// Bytes per element.
    public var bytes: Int { self == .f32 ? 4 : 2 }
}
