import TensorCore

/// Seeded random hidden states `[T, hidden]` ~ N(0, 1): the same values whatever tp is, so
/// every rank and the unsharded reference see one input.
public func seededInput(tokens: Int, hidden: Int, seed: UInt64) throws -> Matrix {
    let values = try SeededInit.fill(name: "input.hidden_states", seed: seed, rows: 0..<tokens, cols: 0..<hidden,
                                 globalCols: hidden, std: 1)
    return try Matrix(rows: tokens, cols: hidden, values: values)
}
