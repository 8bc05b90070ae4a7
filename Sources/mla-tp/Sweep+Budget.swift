import MLA
import Measure
import Planner
import TensorCore

extension Sweep {
    /// The jobs of one tp (all its ranks on this host) through the budget before any is started:
    /// the weights, the timed step with its rate probe (--repeat, --tokens), the decode step
    /// (--decode-context) and the check run (--check-tokens).
    func requireBudget(_ config: MLAConfig, model name: String, tp k: Int) throws {
        let budget = SizeBudget(ranksOnHost: k), hidden = config.hiddenSize
        func step(tokens: Int, context: Int?, repeats: Int) throws(CountOverflow) -> SizeBudget.Need {
            let shape = RateProbe.Shape.forward(tokens: tokens, hidden: hidden)
            return try SizeBudget.step(tokens: tokens, context: context, repeats: repeats, config: config, tp: k, gate: model.gate,
                                       probe: (shape.m, shape.n, shape.k, Checked.product(4, tokens, hidden, what: "allreduce bytes")))
        }
        try budget.requireWeights(config: config, tp: k, gate: model.gate, check: checkTokens > 0, model: name)
        let repeats = self.repeats.count
        try budget.require(.init(self.repeats.flag, repeats)) { v throws(CountOverflow) in try step(tokens: 1, context: nil, repeats: v) }
        try budget.require(.init("--tokens", tokens)) { v throws(CountOverflow) in try step(tokens: v, context: nil, repeats: repeats) }
        if let decodeContext {
            try budget.require(.init("--decode-context", decodeContext)) { v throws(CountOverflow) in try step(tokens: 1, context: v, repeats: repeats) }
        }
        if checkTokens > 0 {
            try budget.require(.init("--check-tokens", checkTokens)) { v throws(CountOverflow) in
                try SizeBudget.forward(tokens: v, sequences: 1, config: config, tp: k, gate: model.gate, serving: false, check: true, output: false)
            }
        }
    }
}
