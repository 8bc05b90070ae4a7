import TensorCore

/// The Megatron pair on its own: `Y = (X·W1ᵀ)·W2ᵀ + b`, W1 column-parallel and W2 row-parallel,
/// with seeded TP-independent weights and input, so every tp gives the unsharded product.
///
/// Partition: rank r holds W1's rows `[r·hidden/tp, (r+1)·hidden/tp)` and the same columns of W2;
/// b is replicated. Collective: one allreduce of `[T, out]`, then b once.
public struct LinearPair: Sendable {
    public let tokens: Int, input: Int, hidden: Int, output: Int, seed: UInt64
    /// X `[T, in]`, the same on every rank.
    public let x: Matrix

    public init(tokens: Int, input: Int, hidden: Int, output: Int, seed: UInt64) throws {
        (self.tokens, self.input, self.hidden, self.output, self.seed) = (tokens, input, hidden, output, seed)
        x = try seededInput(tokens: tokens, hidden: input, seed: seed)
    }

    /// Rank `shard`'s two layers: W1 `[hidden/tp, in]` (its rows `outRange`) and W2
    /// `[out, hidden/tp]` (the same columns, `inRange`) with b `[out]`.
    public func layers(_ shard: Shard) throws -> (w1: ColumnParallelLinear, w2: RowParallelLinear) {
        let source = SeededWeights(seed: seed)
        let w1 = try ColumnParallelLinear(name: "w1", inFeatures: input, outFeatures: hidden, bias: false, shard: shard,
                                          source: source, initializer: .random(std: 0.1))
        let w2 = try RowParallelLinear(name: "w2", inFeatures: hidden, outFeatures: output, bias: true, shard: shard,
                                       source: source, initializer: .random(std: 0.1), biasInitializer: .random(std: 1))
        return (w1, w2)
    }

    /// Rank `shard`'s result `[T, out]` (the whole product, after the allreduce).
    public func forward(_ shard: Shard, _ collectives: Collectives) throws -> Matrix {
        let (w1, w2) = try layers(shard)
        var h = Matrix(rows: tokens, cols: w1.localOut)       // [T, hidden/tp]
        try w1.forward(x, into: &h)
        var y = Matrix(rows: tokens, cols: output)            // [T, out]
        try w2.forward(h, into: &y, collectives: collectives)
        return y
    }
}
