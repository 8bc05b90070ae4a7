import TensorParallel

/// How a forward orders its reductions.
/// - `default`: as each kernel and collective chooses — fast, and the bits of a sequence's output
///   may change with the layout (tp, dcp, dp), with the batch around it and with how its tokens
///   arrive (one prefill, chunks, decode steps); `mla-tp invariance` shows where.
/// - `invariant` (`--invariant`): every reduction in a fixed order that no layout, batch or
///   chunking changes, so each sequence's output has the same bits under all of them
///   (docs/invariance.md): the fixed-order kernels (`FixedOrderGemm`) for every product, one
///   attention form (absorbed) for every token over eight fixed key classes merged in one tree,
///   o_proj summed in `InvariantLayout.blocks` head blocks along one tree whose top is the
///   cross-rank reduction (`FixedTreeReduction`).
public enum ForwardMode: String, Codable, Sendable, CaseIterable {
    case `default`
    case invariant
}

/// The sizes the invariant forward's trees allow for a config.
public enum InvariantLayout {
    /// Key classes of the attention tree (cache index mod 8), and so the largest dcp.
    public static let keyClasses = 8
    /// The most head blocks o_proj is summed in: the largest tp the tree serves.
    public static let maxBlocks = 8

    /// o_proj's head blocks for `heads` heads: the largest power of two up to 8 that divides it.
    public static func blocks(heads: Int) -> Int {
        var b = maxBlocks
        while b > 1 && heads % b != 0 { b /= 2 }
        return b
    }

    /// The tp sizes the invariant forward serves for `heads` heads: the divisors of its block count.
    public static func tpSizes(heads: Int) -> [Int] {
        let b = blocks(heads: heads)
        return (0...3).map { 1 << $0 }.filter { $0 <= b && b % $0 == 0 }
    }

    /// The dcp sizes it serves: the divisors of the key classes.
    public static var dcpSizes: [Int] { [1, 2, 4, 8] }

    /// Refuses weights the fixed-order kernels do not read (fp8 block-scaled).
    public static func check(quantization: WeightQuantization) throws(InvariantLayoutError) {
        if quantization != .none { throw InvariantLayoutError(what: "quantization", size: 0, heads: 0, works: []) }
    }

    /// Refuses a layout the trees do not cover, naming the sizes that work.
    public static func check(heads: Int, tp: Int, dcp: Int = 1) throws(InvariantLayoutError) {
        if !tpSizes(heads: heads).contains(tp) { throw InvariantLayoutError(what: "tp", size: tp, heads: heads, works: tpSizes(heads: heads)) }
        if !dcpSizes.contains(dcp) { throw InvariantLayoutError(what: "dcp", size: dcp, heads: heads, works: dcpSizes) }
    }
}

/// A layout the invariant forward cannot serve (a usage error).
public struct InvariantLayoutError: Error, Equatable, CustomStringConvertible {
    public var what: String
    public var size: Int
    public var heads: Int
    public var works: [Int]

    public var description: String {
        let list = works.map(String.init).joined(separator: ", ")
        if what == "quantization" {
            return "--invariant runs f32 and bf16 weights; fp8 block-scaled weights have no fixed-order kernel yet — drop --quantization fp8 (use --dtype bf16), or drop --invariant"
        }
        if what == "tp" {
            return "--invariant sums o_proj's \(heads) heads in \(InvariantLayout.blocks(heads: heads)) fixed blocks, which tp \(size) does not split — use tp \(list), or drop --invariant"
        }
        return "--invariant splits the keys into \(InvariantLayout.keyClasses) fixed classes, which dcp \(size) does not split — use dcp \(list), or drop --invariant"
    }
}
