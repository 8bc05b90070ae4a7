import Foundation

/// What `scripts/bench/torch_gloo_baseline.py --json` wrote: the same TP forward in PyTorch with
/// gloo, per rank, for bench to hold its prefill against.
public struct TorchBaseline: Codable, Sendable, Equatable {
    public struct Rank: Codable, Sendable, Equatable {
        public var rank: Int
        public var totalSeconds: Samples
        enum CodingKeys: String, CodingKey { case rank, totalSeconds = "total_seconds" }
    }
    public var torch: String
    public var preset: String
    public var tp: Int
    public var tokens: Int
    /// `float32` or `bfloat16` (files written before the option existed hold f32 runs).
    public var dtype: String?
    public var ranks: [Rank]

    /// The slowest rank's median forward.
    public var seconds: Double { ranks.map(\.totalSeconds.median).max() ?? 0 }

    /// Reads a baseline file and checks that it measured what bench compares it with.
    public static func load(_ path: String, preset: String, tp: Int, tokens: Int) throws -> TorchBaseline {
        let b = try MeasureError.decode(TorchBaseline.self, path: path, what: "PyTorch baseline",
                                        remedy: "pass a file written by scripts/bench/torch_gloo_baseline.py --json")
        guard b.dtype == "bfloat16", b.preset == preset, b.tp == tp, b.tokens == tokens, !b.ranks.isEmpty else {
            throw MeasureError.unreadable(path: path, what: "PyTorch bf16 baseline of this bench",
                                          detail: "it measured \(b.preset) at tp=\(b.tp), T=\(b.tokens), \(b.dtype ?? "float32")",
                                          remedy: "run scripts/bench/torch_gloo_baseline.py --preset \(preset) --nproc \(tp) --tokens \(tokens) --dtype bfloat16 --json")
        }
        return b
    }
}
