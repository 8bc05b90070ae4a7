import Foundation
@testable import MLA
import Planner
import TensorCore
import TensorParallel
import Testing

/// The plan of the sharded latent projections (`LatentProjection`): names, bytes, FLOPs, the
/// gather it counts, and the crossover it draws.
@Suite struct LatentPlanTests {
    let source = SeededWeights(seed: 5)

    @Test func layoutNamesCarryTheLatentFormAndRoundTrip() throws {
        for (name, latent) in [("tp8", LatentProjection.replicated), ("tp8-latcol", .column), ("tp8-latseq", .sequence),
                               ("dp2xtp4-dcp2-latcol", .column), ("dp8-latseq", .sequence)] {
            let l = try ParallelLayout(name: name, ranks: 8)
            #expect(l.latent == latent && l.description == name, "\(name) → \(l)")
        }
        for bad in ["tp8-lat", "tp8-latcol-dcp2", "tp8-latcolx", "tp8-", "tp8-latcol-latseq", "tp8-LATCOL"] {
            #expect(throws: LayoutError.badName(bad)) { try ParallelLayout(name: bad, ranks: 8) }
        }
    }

    /// A layout written before the latent choice existed reads as replicated; one written with it keeps it.
    @Test func layoutsWrittenBeforeTheChoiceReadAsReplicated() throws {
        let old = try JSONDecoder().decode(ParallelLayout.self, from: Data(#"{"dp":2,"tp":4,"dcp":2}"#.utf8))
        #expect(old == ParallelLayout(dp: 2, tp: 4, dcp: 2) && old.latent == .replicated)
        let new = ParallelLayout(dp: 1, tp: 8, dcp: 1, latent: .column)
        #expect(try JSONDecoder().decode(ParallelLayout.self, from: JSONEncoder().encode(new)) == new)
    }

    @Test func sequenceFormSplitsOnlyPrefillStepsOfAtLeastTpTokens() {
        #expect(LatentProjection.tokenCounts(10, ranks: 4) == [3, 3, 2, 2])
        #expect(LatentProjection.tokenCounts(3, ranks: 4) == [1, 1, 1, 0])
        #expect(LatentProjection.sequence.splitsTokens(4, ranks: 4, decodeOnly: false))
        #expect(!LatentProjection.sequence.splitsTokens(3, ranks: 4, decodeOnly: false))
        #expect(!LatentProjection.sequence.splitsTokens(64, ranks: 4, decodeOnly: true))
        #expect(!LatentProjection.sequence.splitsTokens(64, ranks: 1, decodeOnly: false))
        #expect(!LatentProjection.column.splitsTokens(64, ranks: 4, decodeOnly: false))
    }

    /// Column-sharded down-projections: the plan's bytes are what each rank's layer holds, and
    /// exactly the replicated plan less (tp − 1)/tp of q_a_proj and kv_a_proj_with_mqa.
    @Test(arguments: [1, 2, 4, 8], [Precision.f32, .bf16])
    func columnPlanBytesMatchTheLayerAndSaveTheDownProjections(tp: Int, precision: Precision) throws {
        let c = Presets.tiny, e = precision.bytesPerElement
        let layer = try MLAAttention(config: c, shard: Shard(rank: tp - 1, size: tp), source: source, precision: precision, latent: .column)
        let plan = ShardingPlan(config: c, tp: tp, gate: .column, precision: precision, latent: .column)
        #expect(plan.bytesPerRank == layer.weightBytes)
        let down = (c.qLoraRank! + c.kvLoraRank + c.qkRopeHeadDim) * c.hiddenSize * e
        #expect(ShardingPlan(config: c, tp: tp, gate: .column, precision: precision).bytesPerRank - plan.bytesPerRank == down - down / tp)
        #expect(ShardingPlan(config: c, tp: tp, gate: .column, precision: precision, latent: .sequence).bytesPerRank
                == ShardingPlan(config: c, tp: tp, gate: .column, precision: precision).bytesPerRank)
    }

    /// The FLOPs of the down-projections per form: 1/tp of the outputs (column), rank 0's run of
    /// a prefill's tokens (sequence), all of them in a decode step under sequence.
    @Test func downProjectionFlopsFollowTheForm() throws {
        let c = Presets.deepseekV3, T = 10, tp = 4
        func down(_ cost: FlopModel.Cost) -> Int { (cost.stage("q_a_proj")?.flops ?? 0) + (cost.stage("kv_a_proj_with_mqa")?.flops ?? 0) }
        let whole = try down(FlopModel.prefill(config: c, tp: tp, gate: .column, sequenceLengths: [T]))
        #expect(try down(FlopModel.prefill(config: c, tp: tp, gate: .column, sequenceLengths: [T], latent: .column)) * tp == whole)
        #expect(try down(FlopModel.prefill(config: c, tp: tp, gate: .column, sequenceLengths: [T], latent: .sequence)) * T == whole * 3)
        let decode = try down(FlopModel.decode(config: c, tp: tp, gate: .column, contexts: [7, 7, 7, 7, 7], path: .absorbed))
        #expect(try down(FlopModel.decode(config: c, tp: tp, gate: .column, contexts: [7, 7, 7, 7, 7], path: .absorbed, latent: .sequence)) == decode)
        let width = c.qLoraRank! + c.kvLoraRank + c.qkRopeHeadDim
        #expect(try FlopModel.latentGatherElements(config: c, tp: tp, latent: .column, tokens: T, decodeOnly: true) == T * width / tp)
        #expect(try FlopModel.latentGatherElements(config: c, tp: tp, latent: .sequence, tokens: T, decodeOnly: false) == 3 * width)
        #expect(try FlopModel.latentGatherElements(config: c, tp: tp, latent: .sequence, tokens: T, decodeOnly: true) == nil)
        #expect(try FlopModel.latentGatherElements(config: c, tp: tp, latent: .replicated, tokens: T, decodeOnly: false) == nil)
    }

    /// The crossover: at its batch the sharded layout is no faster and one sequence fewer it is;
    /// the break-even latency makes both equal; a slower link moves the crossover down.
    @Test func crossoverIsWhereTheShardedDecodeStepStopsWinning() throws {
        let c = Presets.deepseekV3, l = try ParallelLayout(name: "tp8-latcol", ranks: 8)
        func step(_ layout: ParallelLayout, _ b: Int, _ hw: Hardware) throws -> Double {
            let p = try LayoutPlan(config: c, layout: layout, context: 4096, batch: b, bytesPerElement: 2, cacheDType: .bf16)
            let s = p.seconds(p.decode, p.decodeCollectives, config: c, hardware: hw)
            return s.compute + s.communication
        }
        let x = try LatentCrossover(config: c, layout: l, context: 4096, batch: 8, bytesPerElement: 2, cacheDType: .bf16,
                                    quantization: nil, hardware: .h100)
        let twin = ParallelLayout(tp: 8)
        let b = try #require(x.stopsWinningAtBatch)
        #expect(b > 1)
        #expect(try step(l, b, .h100) >= step(twin, b, .h100) && step(l, b - 1, .h100) < step(twin, b - 1, .h100))
        let latency = try #require(x.breakEvenLatencySeconds)
        var hw = Hardware.h100
        hw.linkLatencySeconds = latency
        #expect(abs(try step(l, 8, hw) - step(twin, 8, hw)) < 1e-9)
        hw.linkLatencySeconds = 4 * Hardware.h100.linkLatencySeconds
        let slow = try LatentCrossover(config: c, layout: l, context: 4096, batch: 8, bytesPerElement: 2, cacheDType: .bf16,
                                       quantization: nil, hardware: hw)
        #expect((slow.stopsWinningAtBatch ?? Int.max) < b)
        // Measured links of their own (a CPU probe's) move with the latency too: with the
        // all-gather's link at the allreduce's rate and latency, the break-even is the same, and
        // at that latency on every link the two layouts tie.
        var own = Hardware.h100
        own.allGatherLink = .init(own.linkBytesPerSecond, own.linkLatencySeconds)
        own.reduceScatterLink = .init(own.linkBytesPerSecond, 3 * own.linkLatencySeconds)
        let withLinks = try LatentCrossover(config: c, layout: l, context: 4096, batch: 8, bytesPerElement: 2, cacheDType: .bf16,
                                            quantization: nil, hardware: own)
        let same = try #require(withLinks.breakEvenLatencySeconds)
        #expect(abs(same / latency - 1) < 1e-6 && withLinks.assumedLatencySeconds == own.linkLatencySeconds)
        let tied = own.withStepLatency(same)
        #expect(abs(try step(l, 8, tied) - step(twin, 8, tied)) < 1e-9)
    }
}

/// Heads padded to a multiple of tp: the plan holds what the padded layer holds, and names the waste.
@Suite struct PaddedHeadsPlanTests {
    @Test(arguments: [3, 5, 6, 7])
    func paddedPlanBytesMatchThePaddedLayer(tp: Int) throws {
        let c = Presets.tiny, source = SeededWeights(seed: 5)
        let plan = ShardingPlan(config: c, tp: tp, gate: .column)
        #expect(plan.paddedHeads == c.paddedHeads(tp: tp) && c.paddedHeads(tp: tp) % tp == 0 && c.paddedHeads(tp: tp) > 8)
        for rank in [0, tp - 1] {
            let layer = try MLAAttention(config: c, shard: Shard(rank: rank, size: tp), source: source, padHeads: true)
            #expect(layer.weightBytes == plan.bytesPerRank && layer.localHeads == c.localHeads(tp: tp))
            #expect(layer.realHeads == c.realHeads(rank: rank, tp: tp))
        }
        // The zero weights: one head's share of every per-head weight, times the padded heads.
        let onePerHead = ShardingPlan(config: c, tp: 1, gate: .column).weights.filter { $0.perHead == true }.reduce(0) { $0 + $1.bytesPerRank } / 8
        #expect(plan.paddingBytes == onePerHead * (c.paddedHeads(tp: tp) - 8))
        #expect(ShardingPlan(config: c, tp: 4, gate: .column).paddingBytes == 0)
    }

    @Test func unpaddedLayersRefuseATpThatDoesNotDivideAndNoneTakesMoreRanksThanHeads() {
        #expect(throws: ConfigError.headsNotDivisible(heads: 8, tp: 3)) { try Presets.tiny.validate(tp: 3) }
        #expect(throws: ConfigError.tpExceedsHeads(heads: 8, tp: 9)) { try Presets.tiny.validate(tp: 9, padHeads: true) }
        #expect(throws: Never.self) { try Presets.tiny.validate(tp: 3, padHeads: true) }
        #expect(Presets.tiny.realHeads(rank: 5, tp: 6) == 8..<8 && Presets.tiny.realHeads(rank: 3, tp: 6) == 6..<8)
    }
}
