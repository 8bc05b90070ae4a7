import Measure
import MLA
import Planner
import TensorCore

extension Bench {
    /// Every size through the budget, each with the others at their smallest so that the one
    /// too large is named: the weights, --copy-mib, --repeat and --warmup, --batch, --tokens.
    func requireBudget(_ budget: SizeBudget, config: MLAConfig, model name: String, tp: Int, phases: [BenchPhase]) throws {
        let prefill = phases.contains(.prefill), decode = phases.contains(.decode)
        func need(tokens: Int, batch: Int, copyMib: Int, forwards: Int) throws(CountOverflow) -> SizeBudget.Need {
            try SizeBudget.bench(tokens: tokens, batch: batch, prefill: prefill, decode: decode,
                                 copyBytes: Checked.product(copyMib, 1 << 20, what: "bytes of --copy-mib"), forwards: forwards,
                                 config: config, tp: tp, gate: model.gate, check: check)
        }
        func forwards(repeats: Int = repeats, warmup: Int = warmup) throws(CountOverflow) -> Int {
            try Checked.sum(repeats, warmup, what: "forwards (--repeat + --warmup)")
        }
        try budget.requireWeights(config: config, tp: tp, gate: model.gate, check: check, model: name)
        if decode { try budget.require(.init("--copy-mib", copyMib)) { v throws(CountOverflow) in try need(tokens: 1, batch: 1, copyMib: v, forwards: 1) } }
        try budget.require(.init("--repeat", repeats)) { v throws(CountOverflow) in
            try need(tokens: 1, batch: 1, copyMib: decode ? copyMib : 0, forwards: forwards(repeats: v, warmup: min(warmup, 1)))
        }
        try budget.require(.init("--warmup", warmup)) { v throws(CountOverflow) in
            try need(tokens: 1, batch: 1, copyMib: decode ? copyMib : 0, forwards: forwards(warmup: v))
        }
        if decode {
            try budget.require(.init("--batch", batch)) { v throws(CountOverflow) in try need(tokens: 1, batch: v, copyMib: copyMib, forwards: forwards()) }
        }
        try budget.require(.init("--tokens", tokens)) { v throws(CountOverflow) in
            try need(tokens: v, batch: decode ? batch : 1, copyMib: decode ? copyMib : 0, forwards: forwards())
        }
    }
}
