import Foundation
import MLA
import Measure
import Report
import Testing
import TestSupport

/// Every option of `sweep` and `sweep --layouts` reaches the child jobs: each child's report
/// equals what a direct `mla-tp run` of the same options reports. Every option here is off its
/// default, so a child that ran with a default instead reports another dtype, gate, activation or
/// error against the unsharded forward.
@Suite(.serialized, .tags(.mpirun), .skippedInFastLane) struct SweepOptionsCLITests {
    /// Model and reduction flags, none at its default (tiny's activation is sigmoid, its rope_theta 10000;
    /// --allreduce mpi shows as the report's allreduce path, where auto takes the shared-memory window).
    static let modelFlags = ["--dtype", "bf16", "--allreduce-dtype", "f32", "--allreduce", "mpi", "--gate", "replicated-sliced", "--act", "softplus",
                             "--set", "rope_theta=5000", "--seed", "77", "--kv-cache-dtype", "fp8"]

    /// A direct run of `args` on `ranks` ranks, as its JSON report.
    static func direct(ranks: Int, _ args: [String]) throws -> RunReport {
        let r = MPIJob.run(ranks: ranks, ["run"] + args + ["--check", "--json"], timeout: 120)
        #expect(r.status == 0, "\(r)")
        return try r.decoded(RunReport.self)
    }

    /// The fields a run's options decide (not its timing or memory).
    static func expectSameJob(_ child: RunReport, _ direct: RunReport, _ what: String) {
        #expect(child.dtype == direct.dtype && child.allReduceDType == direct.allReduceDType,
                "\(what): dtype \(String(describing: child.dtype))/\(String(describing: direct.dtype)), allreduce dtype \(String(describing: child.allReduceDType))/\(String(describing: direct.allReduceDType))")
        #expect(child.gate == direct.gate && child.activation == direct.activation, "\(what): gate, activation")
        #expect(child.allReducePath == direct.allReducePath, "\(what): allreduce path")
        #expect(child.tp == direct.tp && child.dp == direct.dp && child.dcp == direct.dcp, "\(what): layout")
        #expect(child.tokens == direct.tokens && child.sequences == direct.sequences && child.layer == direct.layer, "\(what): batch")
        #expect(child.serving?.decodeSteps == direct.serving?.decodeSteps, "\(what): decode steps")
        #expect(child.serving?.cacheDType == direct.serving?.cacheDType && direct.serving?.cacheDType == .fp8, "\(what): cache dtype")
        #expect(child.plan.bytesPerRank == direct.plan.bytesPerRank, "\(what): weights per rank")
        // The error against the unsharded forward is a fingerprint of the weights (seed), the
        // config (--act, --set), the input and both precisions: the same job gives the same bits.
        #expect(child.check == direct.check, "\(what): check \(String(describing: child.check)) vs \(String(describing: direct.check))")
        #expect(child.precisionCheck == direct.precisionCheck, "\(what): the bf16 check")
    }

    @Test func everySweepOptionReachesItsStepAndCheckJobs() throws {
        let dir = try Fixtures.scratch("sweepopts")
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = MPIJob.single(["sweep", "--preset", "tiny", "--tp", "2", "--tokens", "12", "--repeat", "2", "--decode-context", "6",
                               "--decode", "naive", "--check-tokens", "10", "--out", dir.path] + Self.modelFlags, timeout: 300)
        #expect(r.status == 0, "\(r)")
        let doc = try MeasureError.decode(SweepReport.self, path: dir.appendingPathComponent("sweep.json").path, what: "sweep", remedy: "")
        let row = try #require(doc.rows.first)
        let direct = try Self.direct(ranks: 2, ["--preset", "tiny", "--tokens", "10"] + Self.modelFlags)
        #expect(doc.dtype == .bf16 && row.tp == 2)
        #expect(row.checkRelative == direct.check.map { Double($0.relative) }, "check run: \(String(describing: row.checkRelative))")
        #expect(row.checkF32Relative == direct.precisionCheck.map { Double($0.f32.relative) })
        #expect(row.differingElements == direct.precisionCheck?.differingElements && row.bitIdentical == direct.precisionCheck?.bitIdentical)
        // The timed prefill and decode steps: their sizes, gate and the weights each rank held (bf16).
        let step = row.step, decode = try #require(row.decodeStep)
        #expect(step.model == "tiny" && step.gate == .replicatedSliced && step.tokens == 12 && step.repeats == 2 && step.context == nil)
        #expect(decode.gate == .replicatedSliced && decode.context == 6 && decode.decode == .naive && decode.repeats == 2)
        #expect(decode.cacheDType == .fp8 && step.cacheDType == nil)
        #expect(step.ranks.map(\.weightBytes) == direct.ranks.map(\.bytes) && decode.ranks.map(\.weightBytes) == direct.ranks.map(\.bytes))
    }

    @Test func everyLayoutSweepOptionReachesItsRunJobs() throws {
        let dir = try Fixtures.scratch("lsweepopts"), ckpt = dir.appendingPathComponent("ckpt")
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(MPIJob.single(["init", "--preset", "tiny", "--out", ckpt.path]).status == 0)
        let model = ["--model", ckpt.path] + Self.modelFlags
        let r = MPIJob.single(["sweep", "--layouts", "tp2,dp2,tp2-dcp2", "--ranks", "2", "--batch", "3", "--decode-context", "5",
                               "--out", dir.appendingPathComponent("out").path] + model, timeout: 300)
        #expect(r.status == 0, "\(r)")
        let doc = try MeasureError.decode(LayoutSweepReport.self, path: dir.appendingPathComponent("out/layouts.json").path,
                                          what: "layout sweep", remedy: "")
        #expect(doc.rows.map(\.layout) == ["tp2", "dp2", "tp2-dcp2"] && doc.ranks == 2 && doc.batch == 3 && doc.context == 5)
        for (row, (dp, dcp)) in zip(doc.rows, [(1, 1), (2, 1), (1, 2)]) {
            let direct = try Self.direct(ranks: 2, model + ["--dp", "\(dp)", "--dcp", "\(dcp)", "--seqs", "6,6,6", "--decode-steps", "1"])
            Self.expectSameJob(row.run, direct, row.layout)
        }
    }
}
