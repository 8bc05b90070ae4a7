import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import MLA
import Planner
import Report
import Testing
import TestSupport

/// `mla-tp plan` as a plain process (no mpirun): weights, FLOPs, cache, collectives, the gate
/// layouts and the projection.
@Suite(.serialized, .tags(.mpirun), .skippedInFastLane) struct PlanCLITests {
    @Test func deepseekV3AtTp8ShowsTheReplicatedGateAgainstTheColumnShard() {
        let r = MPIJob.single(["plan", "--preset", "deepseek-v3", "--tp", "8"], timeout: 30)
        #expect(r.status == 0, "\(r)")
        for needle in ["469.8 MB", "58.7 MB", "205.3 MB", "616.3 MB", "NO (shape mismatch)", "kv_b_proj (cache)",
                       "attention (absorbed)", "2.3 KB per token", "[2048, 7168]", "[16384, 7168]", "ring"] {
            #expect(r.stdout.contains(needle), "missing \(needle): \(r)")
        }
    }

    @Test func jsonHoldsBytesFlopsCacheAndCollectives() throws {
        let r = MPIJob.single(["plan", "--preset", "deepseek-v3", "--tp", "8", "--tokens", "256", "--json"], timeout: 30)
        #expect(r.status == 0, "\(r)")
        let doc = try r.decoded(PlanReport.self)
        let gateBytes = Dictionary(uniqueKeysWithValues: doc.gates.map { ($0.layout, $0.gateBytesPerRank) })
        #expect(gateBytes[.replicated] == 16384 * 7168 * 4 && gateBytes[.column] == 16384 * 7168 * 4 / 8)
        #expect(doc.gates.first { $0.layout == .replicated }?.runs == false)
        #expect(doc.prefill.stages.reduce(0) { $0 + $1.flops } == doc.prefill.totalFlops)
        #expect(doc.prefill.stages.first { $0.name == "gate" }?.flops == 2 * 256 * 2048 * 7168)
        #expect(doc.kvCache.bytesPerToken == (512 + 64) * 4)
        #expect(doc.collective.prefillBytes == 256 * 7168 * 4)
        #expect(doc.collective.prefillRingBytesPerRank == 2 * 7 * 256 * 7168 * 4 / 8)
        #expect(doc.decode.count == 2)
    }

    /// The plan's FLOPs equal what a real sharded run counts (rank 0 of `mpirun -n K mla-tp run`).
    @Test(arguments: [1, 2, 4])
    func planFlopsEqualTheRunsCountedFlops(tp: Int) throws {
        let args = ["--preset", "tiny", "--seqs", "70,5"]
        let plan = MPIJob.single(["plan", "--tp", "\(tp)", "--json"] + args, timeout: 30)
        let run = MPIJob.run(ranks: tp, ["run", "--json", "--no-check"] + args, timeout: 60)
        #expect(plan.status == 0 && run.status == 0, "\(plan)\n\(run)")
        #expect(try plan.decoded(PlanReport.self).prefill.totalFlops == run.decoded(RunReport.self).flops)
    }

    @Test func hardwareProjectionOnH100H200AndCustom() throws {
        func projection(_ hw: String, tp: Int) throws -> PlanReport.ProjectionReport {
            let r = MPIJob.single(["plan", "--preset", "deepseek-v3", "--tp", "\(tp)", "--hardware", hw, "--json"], timeout: 30)
            #expect(r.status == 0, "\(r)")
            return try #require(try r.decoded(PlanReport.self).projection, "\(hw): \(r)")
        }
        for hw in ["h100", "h200", "custom:989,3350,450,1"] {
            let p = try projection(hw, tp: 8)
            #expect(p.prefill.allReduceSeconds > 0 && p.prefill.stages.count >= 6)
        }
        // H200 has more memory bandwidth and the same compute: never slower.
        func total(_ hw: String) throws -> Double { try #require(projection(hw, tp: 4).decode["absorbed"]).computeSeconds }
        #expect(try total("h200") < total("h100"))
        let text = MPIJob.single(["plan", "--preset", "deepseek-v3", "--tp", "8", "--hardware", "h100"], timeout: 30)
        #expect(text.stdout.contains("Projection on h100") && text.stdout.contains("allreduce"), "\(text)")
    }

    /// `plan --hardware cpu-measured` probes with the plan's model and precision: the attention
    /// kernel and the absorbed decode on its heads, the decode's weights streamed as the run holds
    /// them, and, for layouts, DCP's exchanges; the source names each.
    @Test func cpuMeasuredProbesEveryKernelWithThePlansModel() throws {
        let r = MPIJob.single(["plan", "--preset", "tiny", "--tp", "2", "--tokens", "16", "--dtype", "bf16", "--hardware", "cpu-measured", "--json"],
                              timeout: 120)
        #expect(r.status == 0, "\(r)")
        let hw = try #require(try r.decoded(PlanReport.self).projection?.hardware, "\(r)")
        #expect(hw.attentionFlopsPerSecond ?? 0 > 0 && hw.absorbedBytesPerSecond ?? 0 > 0 && hw.bytesPerElement == 2, "\(hw)")
        #expect(hw.source.contains("attention kernel") && hw.source.contains("(4 heads × 16 tokens)") && hw.source.contains("bf16 weights streamed")
                && hw.source.contains("(4 heads × 17 cached)") && hw.source.contains("the run's reduction (bf16")
                && hw.source.contains("bf16 weights streamed by the decode's product") && hw.source.contains("(the layer's 5 weights,"), "\(hw.source)")
        let layouts = MPIJob.single(["plan", "--preset", "tiny", "--ranks", "2", "--layouts", "tp2,tp2-dcp2", "--context", "24", "--batch", "2",
                                     "--hardware", "cpu-measured", "--json"], timeout: 120)
        #expect(layouts.status == 0, "\(layouts)")
        let lhw = try #require(try layouts.decoded(LayoutPlanReport.self).hardware, "\(layouts)")
        #expect(lhw.allGatherLink != nil && lhw.reduceScatterLink != nil && lhw.source.contains("(4 heads × 24 tokens)"), "\(lhw)")
        // A long prompt's attention kernel is timed on its first 1,024 tokens; the decode after all of them.
        let long = MPIJob.single(["plan", "--preset", "tiny", "--tp", "2", "--tokens", "3000", "--hardware", "cpu-measured", "--json"], timeout: 120)
        let longHW = try #require(try long.decoded(PlanReport.self).projection?.hardware, "\(long)")
        #expect(longHW.source.contains("(4 heads × 1024 tokens)") && longHW.source.contains("(4 heads × 3001 cached)"), "\(longHW.source)")
    }

    /// A probe job that fails ends the plan with the job's own line and both ways on: rerunning
    /// the job that was kept, and planning from rates measured apart with `--rates`, for a tp
    /// plan and a layout plan alike.
    @Test func aFailedProbeNamesTheJobAndTheRatesFileWayOn() {
        let fault = ["MLATP_FAULT": "error", "MLATP_FAULT_RANK": "0"]
        for args in [["--tp", "2", "--tokens", "16"], ["--ranks", "2", "--layouts", "tp2,tp2-dcp2", "--context", "24"]] {
            let r = MPIJob.single(["plan", "--preset", "tiny"] + args + ["--hardware", "cpu-measured"], timeout: 120, environment: fault)
            #expect(r.status != 0 && r.stderr.contains("rate probe (2 ranks) failed") && r.stderr.contains("injected fault"), "\(args): \(r)")
            #expect(r.stderr.contains("mla-tp job ") && r.stderr.contains("mla-tp sweep-step --probe --out rates.json")
                    && r.stderr.contains("--rates rates.json"), "\(args): \(r)")
            // The kept job is DIR/jobs/probe-2.json: remove DIR.
            if let job = r.stderr.split(separator: " ").first(where: { $0.hasSuffix("/jobs/probe-2.json;") }) {
                try? FileManager.default.removeItem(at: URL(fileURLWithPath: String(job.dropLast())).deletingLastPathComponent().deletingLastPathComponent())
            }
        }
    }

    /// cpu-measured rates read from a real `bench --json` report.
    @Test func cpuMeasuredRatesFromABenchReport() throws {
        let bench = MPIJob.run(ranks: 2, ["bench", "--preset", "tiny", "--tokens", "32", "--phase", "both", "--json"], timeout: 120)
        #expect(bench.status == 0, "\(bench)")
        let dir = try Fixtures.scratch("benchjson")
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("bench.json").path
        try Data(bench.stdout.utf8).write(to: URL(fileURLWithPath: file))
        let r = MPIJob.single(["plan", "--preset", "tiny", "--tp", "2", "--tokens", "32", "--bench-json", file, "--json"], timeout: 30)
        #expect(r.status == 0, "\(r)")
        let hw = try #require(try r.decoded(PlanReport.self).projection?.hardware, "\(r)")
        #expect(hw.name == "cpu-measured")
        #expect(hw.flopsPerSecond > 0 && hw.memoryBytesPerSecond > 0 && hw.linkBytesPerSecond > 0, "\(hw)")
        let bad = MPIJob.single(["plan", "--tp", "2", "--bench-json", "/nonexistent.json"], timeout: 30)
        #expect(bad.status == 4, "\(bad)")
    }

    @Test func badArgumentsExitWithTheirClass() {
        let hw = MPIJob.single(["plan", "--tp", "2", "--hardware", "tpu"], timeout: 30)
        #expect(hw.status == 2 && hw.stderr.contains("h100"), "\(hw)")
        let custom = MPIJob.single(["plan", "--tp", "2", "--hardware", "custom:1,2"], timeout: 30)
        #expect(custom.status == 2 && custom.stderr.contains("TFLOPS"), "\(custom)")
        // A tp that does not divide the heads is planned padded (and says so); one above the heads is refused.
        let padded = MPIJob.single(["plan", "--tp", "3"], timeout: 30)
        #expect(padded.status == 0 && padded.stdout.contains("planned padded to 9 with zero heads"), "\(padded)")
        let tooMany = MPIJob.single(["plan", "--tp", "9"], timeout: 30)
        #expect(tooMany.status == 3 && tooMany.stderr.contains("tp=9 is more than the 8 attention heads"), "\(tooMany)")
    }
}

/// `mla-tp sweep` drives mpirun per tp, prints progress and one table, and writes its figures.
@Suite(.serialized, .tags(.mpirun), .skippedInFastLane) struct SweepCLITests {
    @Test func tinySweepWritesTheTableJsonAndWellFormedFigures() throws {
        let dir = try Fixtures.scratch("sweep")
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = MPIJob.single(["sweep", "--preset", "tiny", "--tp", "1,2,4", "--tokens", "24", "--repeats", "2",
                               "--decode-context", "40", "--out", dir.path], timeout: 240)
        #expect(r.status == 0, "\(r)")
        // Progress: one line per job with elapsed time and an estimate.
        #expect(r.stderr.contains("[1/11] rate probe (1 rank)") && r.stderr.contains("rate probe (2 ranks)") && r.stderr.contains("tp=4") && r.stderr.contains("elapsed")
                && r.stderr.contains("eta"), "\(r)")
        for needle in ["best", "compute", "allreduce", "projected", "weights/rank", "max rel. error vs unsharded", "Decode (absorbed)"] {
            #expect(r.stdout.contains(needle), "missing \(needle): \(r)")
        }
        let doc = try JSONDecoder().decode(SweepReport.self, from: Data(contentsOf: dir.appendingPathComponent("sweep.json")))
        #expect(doc.rows.map(\.tp) == [1, 2, 4])
        for row in doc.rows {
            #expect(try #require(row.checkRelative) <= 1e-5)
            #expect(row.step.timeline.count == row.tp)
            // Every rank's lane shows the forward's stages, not one compute bar.
            for lane in row.step.timeline {
                let kinds = Set(lane.map(\.kind))
                #expect(kinds.isSuperset(of: [.q, .kv, .attention, .gate, .oProj]) && !kinds.contains(.compute), "tp=\(row.tp): \(kinds)")
                #expect(row.tp == 1 || kinds.contains(.allReduce), "tp=\(row.tp): \(kinds)")
            }
        }
        let timeline = try String(contentsOf: dir.appendingPathComponent("timeline-tp2.svg"), encoding: .utf8)
        for stage in ["q", "kv", "attention", "gate", "o_proj", "allreduce"] {
            #expect(timeline.contains(">\(stage)<"), "the timeline's legend lacks \(stage)")
        }
        for name in ["timeline-tp1.svg", "timeline-tp2.svg", "timeline-tp4.svg", "bytes-per-rank.svg", "time-vs-projection.svg"] {
            let svg = try String(contentsOf: dir.appendingPathComponent(name), encoding: .utf8)
            #expect(svg.hasPrefix("<?xml") && svg.contains("<svg") && svg.hasSuffix("</svg>\n"), "\(name)")
            #expect(XMLParser(data: Data(svg.utf8)).parse(), "\(name) is not well-formed XML")
        }
    }

    /// `sweep --layouts`: every layout runs the same batch, checked, beside its plan.
    @Test func layoutSweepRunsEveryLayoutCheckedBesideItsPlan() throws {
        let dir = try Fixtures.scratch("lsweep")
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = MPIJob.single(["sweep", "--layouts", "tp2,dp2,tp2-dcp2,tp2-latcol", "--ranks", "2", "--batch", "3", "--decode-context", "9",
                               "--repeat", "2", "--out", dir.path], timeout: 120)
        #expect(r.status == 0, "\(r)")
        let doc = try JSONDecoder().decode(LayoutSweepReport.self, from: Data(contentsOf: dir.appendingPathComponent("layouts.json")))
        #expect(doc.rows.map(\.layout) == ["tp2", "dp2", "tp2-dcp2", "tp2-latcol"])
        for row in doc.rows {
            #expect((row.run.check?.relative ?? 1) <= 1e-5, "\(row.layout)")
            let planned = (row.plan.prefillCollectives + row.plan.decodeCollectives).reduce(0) { $0 + $1.bytes }
            #expect(row.bytesSentRank0 == planned, "\(row.layout): sent \(row.bytesSentRank0), plan \(planned)")
            // Each layout projected on the probe's rates beside its measured pass: the error column.
            let projected = try #require(row.projectedSeconds, "\(row.layout) has no projection")
            #expect(projected > 0 && row.projectionError?.isFinite == true
                    && abs(projected - (row.projectedPrefillSeconds ?? 0) - (row.projectedDecodeSeconds ?? 0)) < 1e-12, "\(row.layout)")
            // --repeat passes, the fastest timed, its stages recorded; a row off by more than 20% names its stage.
            let stages = try #require(row.run.stageSeconds, "\(row.layout) has no stage times")
            #expect(row.run.passes == 2 && stages["attention"] != nil && stages["q"] != nil, "\(row.layout): \(stages)")
            #expect(row.run.passSeconds?.count == 2 && row.run.passSeconds?.min() == row.run.forwardSeconds, "\(row.layout): the fastest pass is reported")
            let missed = abs(row.projectionError ?? 0) > 0.2
            #expect((row.miss != nil) == missed && r.stdout.contains("\(row.layout) misses by more than 20%") == missed, "\(row.layout)")
        }
        // The probe timed the attention kernel on one sequence of the context (tiny: 8 heads, 4 per rank).
        #expect(doc.rates?.attentionFlopsPerSecond ?? 0 > 0 && doc.rates?.attentionShape == [4, 9], "\(String(describing: doc.rates))")
        // And the absorbed decode over the context and the step's token, on a rank's heads.
        #expect(doc.rates?.absorbedBytesPerSecond ?? 0 > 0 && doc.rates?.absorbedShape == [4, 10], "\(String(describing: doc.rates))")
        #expect(r.stdout.contains("the fastest of 2") && r.stdout.contains("attention kernel"), "\(r)")
        // The link is the run's own reduction, both sizes timed through it.
        #expect(doc.rates?.reductionPaths?.count == 2 && doc.rates?.reductionBytesPerSecond ?? 0 > 0
                && r.stdout.contains("the run's reduction (f32"), "\(String(describing: doc.rates))")
        // tp2-dcp2's exchanges have their own links, timed through the same collectives.
        #expect(doc.rates?.allGatherBytesPerSecond ?? 0 > 0 && doc.rates?.reduceScatterBytesPerSecond ?? 0 > 0
                && doc.rates?.allGatherStepLatencySeconds != nil && r.stdout.contains(" µs, reduce-scatter "), "\(String(describing: doc.rates))")
        #expect(doc.rates?.ranks == 2 && r.stdout.contains("projected") && r.stdout.contains("error = projected / pass − 1"), "\(r)")
        let errors = r.stdout.split(separator: "\n").filter { $0.hasPrefix("tp2") || $0.hasPrefix("dp2") }
            .filter { $0.contains("%") && !$0.contains("misses") }
        #expect(errors.count == 4, "one error per layout row: \(r.stdout)")
        #expect(doc.rows[0].cachedTokensMax == 3 * 10 && doc.rows[1].cachedTokensMax == 2 * 10 && doc.rows[2].cachedTokensMax == 3 * 5)
        #expect(r.stdout.contains("tp2-dcp2") && r.stdout.contains("cached tokens/rank"), "\(r)")
    }
}
