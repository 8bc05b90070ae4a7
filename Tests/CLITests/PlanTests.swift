import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing
import TestSupport

/// `mla-tp plan` as a plain process (no mpirun): weights, FLOPs, cache, collectives, the gate
/// layouts and the projection.
@Suite(.serialized) struct PlanCLITests {
    static func json(_ r: MPIJob.Result) -> [String: Any]? {
        try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
    }

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
        let doc = try #require(Self.json(r), "not JSON: \(r)")
        let gates = try #require(doc["gates"] as? [[String: Any]])
        let gateBytes = Dictionary(uniqueKeysWithValues: gates.map { ($0["layout"] as! String, ($0["gateBytesPerRank"] as! NSNumber).intValue) })
        #expect(gateBytes["replicated"] == 16384 * 7168 * 4 && gateBytes["column"] == 16384 * 7168 * 4 / 8)
        #expect(gates.first { $0["layout"] as? String == "replicated" }?["runs"] as? Bool == false)
        let prefill = try #require(doc["prefill"] as? [String: Any])
        let stages = try #require(prefill["stages"] as? [[String: Any]])
        let sum = stages.reduce(0) { $0 + ($1["flops"] as! NSNumber).intValue }
        #expect(sum == (prefill["totalFlops"] as! NSNumber).intValue)
        #expect(stages.first { $0["name"] as? String == "gate" }.map { ($0["flops"] as! NSNumber).intValue } == 2 * 256 * 2048 * 7168)
        #expect(((doc["kvCache"] as? [String: Any])?["bytesPerToken"] as? NSNumber)?.intValue == (512 + 64) * 4)
        let collective = try #require(doc["collective"] as? [String: Any])
        #expect((collective["prefillBytes"] as! NSNumber).intValue == 256 * 7168 * 4)
        #expect((collective["prefillRingBytesPerRank"] as! NSNumber).intValue == 2 * 7 * 256 * 7168 * 4 / 8)
        #expect((doc["decode"] as? [[String: Any]])?.count == 2)
    }

    /// The plan's FLOPs equal what a real sharded run counts (rank 0 of `mpirun -n K mla-tp run`).
    @Test(arguments: [1, 2, 4])
    func planFlopsEqualTheRunsCountedFlops(tp: Int) throws {
        let args = ["--preset", "tiny", "--seqs", "70,5"]
        let plan = MPIJob.single(["plan", "--tp", "\(tp)", "--json"] + args, timeout: 30)
        let run = MPIJob.run(ranks: tp, ["run", "--json", "--no-check"] + args, timeout: 60)
        #expect(plan.status == 0 && run.status == 0, "\(plan)\n\(run)")
        let planned = try #require((Self.json(plan)?["prefill"] as? [String: Any])?["totalFlops"] as? NSNumber)
        let counted = try #require(Self.json(run)?["flops"] as? NSNumber)
        #expect(planned.intValue == counted.intValue)
    }

    @Test func hardwareProjectionOnH100H200AndCustom() throws {
        for hw in ["h100", "h200", "custom:989,3350,450,1"] {
            let r = MPIJob.single(["plan", "--preset", "deepseek-v3", "--tp", "8", "--hardware", hw, "--json"], timeout: 30)
            #expect(r.status == 0, "\(r)")
            let projection = try #require(Self.json(r)?["projection"] as? [String: Any], "\(hw): \(r)")
            let prefill = try #require(projection["prefill"] as? [String: Any])
            #expect(((prefill["allReduceSeconds"] as? NSNumber)?.doubleValue ?? 0) > 0)
            #expect(((prefill["stages"] as? [Any])?.count ?? 0) >= 6)
        }
        // H200 has more memory bandwidth and the same compute: never slower.
        func total(_ hw: String) throws -> Double {
            let r = MPIJob.single(["plan", "--preset", "deepseek-v3", "--tp", "4", "--hardware", hw, "--json"], timeout: 30)
            let p = try #require((Self.json(r)?["projection"] as? [String: Any])?["decode"] as? [String: Any])
            return try #require(((p["absorbed"] as? [String: Any])?["stages"] as? [[String: Any]])?
                .reduce(0.0) { $0 + (($1["seconds"] as? NSNumber)?.doubleValue ?? 0) })
        }
        #expect(try total("h200") < total("h100"))
        let text = MPIJob.single(["plan", "--preset", "deepseek-v3", "--tp", "8", "--hardware", "h100"], timeout: 30)
        #expect(text.stdout.contains("Projection on h100") && text.stdout.contains("allreduce"), "\(text)")
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
        let hw = try #require((Self.json(r)?["projection"] as? [String: Any])?["hardware"] as? [String: Any], "\(r)")
        #expect(hw["name"] as? String == "cpu-measured")
        for key in ["flopsPerSecond", "memoryBytesPerSecond", "linkBytesPerSecond"] {
            #expect(((hw[key] as? NSNumber)?.doubleValue ?? 0) > 0, "\(key): \(hw)")
        }
        let bad = MPIJob.single(["plan", "--tp", "2", "--bench-json", "/nonexistent.json"], timeout: 30)
        #expect(bad.status == 4, "\(bad)")
    }

    @Test func badArgumentsExitWithTheirClass() {
        let hw = MPIJob.single(["plan", "--tp", "2", "--hardware", "tpu"], timeout: 30)
        #expect(hw.status == 2 && hw.stderr.contains("h100"), "\(hw)")
        let custom = MPIJob.single(["plan", "--tp", "2", "--hardware", "custom:1,2"], timeout: 30)
        #expect(custom.status == 2 && custom.stderr.contains("TFLOPS"), "\(custom)")
        let indivisible = MPIJob.single(["plan", "--tp", "3"], timeout: 30)
        #expect(indivisible.status == 3, "\(indivisible)")
    }
}

/// `mla-tp sweep` drives mpirun per tp, prints progress and one table, and writes its figures.
@Suite(.serialized) struct SweepCLITests {
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
        let data = try Data(contentsOf: dir.appendingPathComponent("sweep.json"))
        let doc = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let rows = try #require(doc["rows"] as? [[String: Any]])
        #expect(rows.map { ($0["tp"] as? NSNumber)?.intValue } == [1, 2, 4])
        for row in rows {
            let rel = try #require((row["checkRelative"] as? NSNumber)?.doubleValue)
            #expect(rel <= 1e-5)
            let step = try #require(row["step"] as? [String: Any])
            let timeline = try #require(step["timeline"] as? [[Any]])
            #expect(timeline.count == (row["tp"] as! NSNumber).intValue)
        }
        for name in ["timeline-tp1.svg", "timeline-tp2.svg", "timeline-tp4.svg", "bytes-per-rank.svg", "time-vs-projection.svg"] {
            let svg = try String(contentsOf: dir.appendingPathComponent(name), encoding: .utf8)
            #expect(svg.hasPrefix("<?xml") && svg.contains("<svg") && svg.hasSuffix("</svg>\n"), "\(name)")
            #expect(XMLParser(data: Data(svg.utf8)).parse(), "\(name) is not well-formed XML")
        }
    }
}
