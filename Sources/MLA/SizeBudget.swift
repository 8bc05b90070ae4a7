import Foundation

/// Refuses a batch whose activations cannot fit in this machine's memory, before anything is
/// allocated, with the estimate in the message.
public enum TokenBudget {
    /// Bytes of one rank's forward workspace for `tokens` tokens (f32), the input and output included.
    public static func activationBytes(tokens: Int, config c: MLAConfig, tp: Int) -> Double {
        let hl = Double(c.numAttentionHeads / max(tp, 1))
        let perToken = Double(c.hiddenSize) * 2                               // x and out
            + Double(c.qLoraRank ?? 0)                                        // qa
            + hl * Double(c.qkHeadDim)                                        // q
            + Double(c.kvLoraRank + c.qkRopeHeadDim)                          // kva
            + hl * Double(c.qkNopeHeadDim + c.vHeadDim)                       // kv
            + hl * Double(c.vHeadDim) + Double(c.attnOutWidth)                // attn, gate (replicated worst case)
        return 4 * (Double(tokens) * perToken + Double(AttentionKernel.blockRows) * Double(tokens))
    }

    /// Throws when `tp` ranks' weights and activations exceed 80% of physical memory.
    public static func check(tokens: Int, config: MLAConfig, tp: Int,
                             physicalMemory: Double = Double(ProcessInfo.processInfo.physicalMemory)) throws {
        let weights = Double(ShardingPlan(config: config, tp: tp, gate: .column).bytesPerRank)
        let needed = Double(tp) * (weights + activationBytes(tokens: tokens, config: config, tp: tp))
        let limit = 0.8 * physicalMemory
        guard needed <= limit else { throw CapacityError(tokens: tokens, tp: tp, neededBytes: needed, limitBytes: limit) }
    }
}

/// A batch too large for this machine.
public struct CapacityError: Error, Equatable, CustomStringConvertible {
    public let tokens: Int
    public let tp: Int
    public let neededBytes: Double
    public let limitBytes: Double

    public var description: String {
        String(format: "%d tokens at tp=%d need about %.1f GB (weights + activations over all ranks) but this machine allows %.1f GB — "
               + "use fewer tokens (--tokens) or split the batch", tokens, tp, neededBytes / 1e9, limitBytes / 1e9)
    }
}
