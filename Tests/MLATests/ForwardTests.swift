import MLA
import TensorCore
import TensorParallel
import Testing
import TestSupport

@Suite struct ForwardTests {
    let source = SeededWeights(seed: 5)

    func input(_ config: MLAConfig, tokens: Int) throws -> Matrix {
        try Matrix(rows: tokens, cols: config.hiddenSize,
                   values: try SeededInit.fill(name: "x", seed: 5, rows: 0..<tokens, cols: 0..<config.hiddenSize, globalCols: config.hiddenSize, std: 1))
    }

    @Test func allThreeGateLayoutsAgreeAtTpOne() throws {
        let c = Presets.tiny
        let x = try input(c, tokens: 9)
        let batch = try Batch(sequenceLengths: [4, 5])
        let outs = try GateLayout.separate.map {
            try MLAAttention(config: c, shard: .whole, gateLayout: $0, source: source).forward(x, batch: batch, collectives: .local)
        }
        #expect(outs[0] == outs[1] && outs[0] == outs[2])
    }

    @Test func replicatedGateFailsAtTpAboveOneNamingBothShapesAndTheFix() throws {
        let c = Presets.tiny
        let layer = try MLAAttention(config: c, shard: Shard(rank: 1, size: 4), gateLayout: .replicated, source: source)
        do {
            _ = try layer.forward(try input(c, tokens: 16), batch: try Batch(sequenceLengths: [16]), collectives: .local)
            Issue.record("expected the gate mismatch")
        } catch let e as GateMismatchError {
            let text = e.description
            #expect(text.contains("[16, 256]") && text.contains("all 8 heads × 32"))
            #expect(text.contains("rank 1's attention output [16, 64]") && text.contains("heads 2–3 × 32"))
            #expect(text.contains("tp=4") && text.contains("--gate column"))
        }
    }

    @Test func sequencesInABatchDoNotAttendToEachOther() throws {
        let c = Presets.tiny
        let layer = try MLAAttention(config: c, shard: .whole, source: source)
        let x = try input(c, tokens: 10)
        let both = try layer.forward(x, batch: try Batch(sequenceLengths: [3, 7]), collectives: .local)
        let second = try layer.forward(x.rows(3..<10), batch: try Batch(sequenceLengths: [7]), collectives: .local)
        #expect(try Comparison(both.rows(3..<10), reference: second).relative < 1e-6)
    }

    @Test func causalityMeansLaterTokensDoNotChangeEarlierOutputs() throws {
        let c = Presets.tiny
        let layer = try MLAAttention(config: c, shard: .whole, source: source)
        let x = try input(c, tokens: 70)   // more than one query block
        let full = try layer.forward(x, batch: try Batch(sequenceLengths: [70]), collectives: .local)
        let prefix = try layer.forward(x.rows(0..<65), batch: try Batch(sequenceLengths: [65]), collectives: .local)
        #expect(try Comparison(full.rows(0..<65), reference: prefix).relative < 1e-6)
    }

    @Test func emptyBatchReturnsAnEmptyResult() throws {
        let c = Presets.tiny
        let layer = try MLAAttention(config: c, shard: .whole, source: source)
        let out = try layer.forward(Matrix(rows: 0, cols: c.hiddenSize), batch: try Batch(sequenceLengths: []), collectives: .local)
        #expect(out.shape == [0, c.hiddenSize])
    }

    @Test func wrongInputWidthIsAShapeError() throws {
        let layer = try MLAAttention(config: Presets.tiny, shard: .whole, source: source)
        #expect(throws: ShapeError.self) {
            try layer.forward(Matrix(rows: 2, cols: 7), batch: try Batch(sequenceLengths: [2]), collectives: .local)
        }
    }

    @Test func stageGuardNamesTheFirstNonFiniteStage() throws {
        let c = Presets.tiny
        let layer = try MLAAttention(config: c, shard: .whole, source: source)
        layer.checkEveryStage = true
        var x = try input(c, tokens: 4)
        x[2, 5] = .nan
        do {
            _ = try layer.forward(x, batch: try Batch(sequenceLengths: [4]), collectives: .local)
            Issue.record("expected a NumericError")
        } catch let e as NumericError {
            #expect(e.stage == .q && e.token == 2 && e.rank == 0)
        }
    }
}
