import Foundation
import SafeTensors
import Testing
import TestSupport

/// Flags that meant nothing or the wrong thing, failures that were reported as our bug, and
/// directory outputs written by two jobs at once (docs/reliability.md, third round).
@Suite(.serialized, .tags(.mpirun), .skippedInFastLane) struct HostileFlagTests {
    /// Every flag of each kind that was accepted and ran something meaningless: refused, naming
    /// the flag, with what to do.
    static let meaningless: [([String], Int32, String)] = [
        (["plan", "--preset", "tiny", "--ranks", "4", "--layouts", ""], 3, "--layouts"),
        (["plan", "--preset", "tiny", "--ranks", "4", "--layouts", ","], 3, "--layouts"),
        (["plan", "--preset", "tiny", "--ranks", "4", "--layouts", "tp4,"], 3, "--layouts"),
        (["sweep", "--preset", "tiny", "--ranks", "2", "--layouts", ""], 3, "--layouts"),
        (["sweep", "--preset", "tiny", "--ranks", "2", "--layouts", "tp2", "--tp", "2"], 2, "drop --tp"),
        (["sweep", "--preset", "tiny", "--ranks", "2", "--layouts", "tp2-dcp2", "--decode", "naive"], 2, "--decode naive"),
        (["sweep", "--preset", "tiny", "--ranks", "2"], 2, "--layouts"),
        (["plan", "--preset", "tiny", "--tp", "2", "--hardware", "custom:inf,1,1,1"], 2, "--hardware"),
        (["plan", "--preset", "tiny", "--tp", "2", "--hardware", "custom:0,1,1,1"], 2, "--hardware"),
        (["plan", "--preset", "tiny", "--tp", "2", "--hardware", "custom:1e308,1,1,1"], 2, "--hardware"),
        (["plan", "--preset", "tiny", "--ranks", "4", "--layouts", "tp4", "--memory-per-rank", "-1"], 2, "--memory-per-rank"),
        (["plan", "--preset", "tiny", "--ranks", "4", "--layouts", "tp4", "--memory-per-rank=-1"], 2, "--memory-per-rank"),
        (["plan", "--preset", "tiny", "--ranks", "4", "--layouts", "tp4", "--memory-per-rank", "1e-30GB"], 2, "--memory-per-rank"),
        (["sweep", "--preset", "tiny", "--wait-for-idle", "-1"], 2, "--wait-for-idle"),
        (["sweep", "--preset", "tiny", "--wait-for-idle", "nan"], 2, "--wait-for-idle"),
        (["sweep", "--preset", "tiny", "--ranks", "-1", "--layouts", "tp1"], 2, "--ranks"),
        (["sweep", "--preset", "tiny", "--batch", "-1", "--layouts", "tp1"], 2, "--batch"),
        // More ranks than the launch policy starts on this machine (MPILauncher.maxRanks).
        (["sweep", "--preset", "tiny", "--ranks", "999", "--layouts", "tp999"], 2, "--ranks 999 must be ≤"),
        (["sweep", "--preset", "tiny", "--tp", "2,999"], 2, "--tp 999 must be ≤"),
    ]

    @Test(arguments: meaningless.indices)
    func aFlagThatMeansNothingIsRefused(index: Int) throws {
        let (args, code, flag) = Self.meaningless[index]
        let dir = try Fixtures.scratch("flag")
        let r = try FailureContract.expect(args + (args[0] == "sweep" ? ["--out", dir.appendingPathComponent("out").path] : []),
                                           ranks: nil, code: code, mentions: [flag], watching: [dir])
        #expect(!r.stderr.contains("Missing value"), "\(r)")
    }

    /// Error lines blame the flags given: a layout name speaks of itself and --ranks (never of
    /// --dp, --dcp or -n), a huge --ranks of --ranks (not --batch), and every one says what to do.
    @Test(arguments: [(["--ranks", "4", "--layouts", "dp3xtp3"], "dp3xtp3"), (["--ranks", "4", "--layouts", "dp3"], "dp3"),
                      (["--ranks", "4", "--layouts", "tp4-dcp3"], "tp4-dcp3"), (["--ranks", "4", "--layouts", "TP8"], "TP8"),
                      (["--ranks", "4000000", "--layouts", "tp8"], "--ranks"), (["--ranks", "2000000", "--layouts", "tp2000000"], "--ranks")])
    func anErrorLineBlamesTheFlagGiven(args: [String], blamed: String) throws {
        let dir = try Fixtures.scratch("blame")
        let r = try FailureContract.expect(["plan", "--preset", "tiny"] + args, ranks: nil, code: args.contains("TP8") || args.contains("dp3xtp3")
                                           || args.contains("dp3") || args.contains("tp4-dcp3") ? 3 : 2, mentions: [blamed], watching: [dir])
        #expect(!r.stderr.contains("--dp ") && !r.stderr.contains("--dcp ") && !r.stderr.contains("-n ") && !r.stderr.contains("--batch"), "\(r)")
    }

    /// A rates file whose rate is zero, negative or infinite is refused, naming the key (it
    /// projected "inf s" or a negative time with exit 0).
    @Test(arguments: ["0", "-5e9", "\"inf\""])
    func aRatesFileWithARateThatIsNotPositiveIsRefused(rate: String) throws {
        let dir = try Fixtures.scratch("rates")
        let file = dir.appendingPathComponent("rates.json")
        try Data("""
            {"sgemmFlopsPerSecond": \(rate), "copyBytesPerSecond": 1e10, "allReduceBytesPerSecond": 1e9, "allReduceStepLatencySeconds": 1e-6,
             "allReduceLargeBytes": 1048576, "allReduceSmallBytes": 1024, "ranks": 2, "cores": 2}
            """.utf8).write(to: file)
        try FailureContract.expect(["plan", "--preset", "tiny", "--tp", "2", "--hardware", "cpu-measured", "--rates", file.path], ranks: nil,
                                   code: 4, mentions: ["sgemmFlopsPerSecond", file.path], watching: [dir])
    }

    /// sweep --out that cannot be a directory is a usage line like init's (it was exit 70 with a
    /// raw NSError), before any job starts.
    @Test(arguments: ["a file", "under a file"])
    func aSweepOutThatCannotBeADirectoryIsAUsageError(kind: String) throws {
        let dir = try Fixtures.scratch("sweepout")
        let file = dir.appendingPathComponent("afile")
        try Data("x".utf8).write(to: file)
        let out = kind == "a file" ? file.path : file.appendingPathComponent("sub").path
        for command in [["sweep", "--tp", "1"], ["sweep", "--layouts", "tp1", "--ranks", "1"]] {
            try FailureContract.expect(command + ["--preset", "tiny", "--out", out], ranks: nil, code: 2, mentions: ["--out", "afile"], watching: [dir])
        }
    }

    /// A quantization_config value names the file and the key.
    @Test func aBadWeightBlockSizeNamesTheFileAndTheKey() throws {
        let dir = try HostileInputTests.checkpoint()
        let config = dir.appendingPathComponent("config.json")
        var json = try JSONSerialization.jsonObject(with: Data(contentsOf: config)) as! [String: Any]
        json["quantization_config"] = ["quant_method": "fp8", "fmt": "e4m3", "weight_block_size": [0]]
        try JSONSerialization.data(withJSONObject: json).write(to: config)
        try FailureContract.expect(["run", "--model", dir.path], ranks: 2, code: 3, mentions: [config.path, "weight_block_size"], watching: [dir])
    }

    /// A rank variable left in the environment by a finished job does not silence a usage error.
    @Test func aStaleRankVariableDoesNotSilenceAUsageError() throws {
        let dir = try Fixtures.scratch("stale")
        try FailureContract.expect(["--bogus"], ranks: nil, code: 2, mentions: ["--bogus"], watching: [dir],
                                   environment: ["OMPI_COMM_WORLD_RANK": "1", "PMIX_SERVER_TMPDIR": dir.appendingPathComponent("gone").path])
    }

    /// A directory another mla-tp is writing (here: this test process holds it, as a running
    /// init or sweep does) is refused at once by init and by sweep, naming the holder; nothing
    /// in it changes.
    @Test(arguments: [["init", "--preset", "tiny"], ["sweep", "--preset", "tiny", "--tp", "1"],
                      ["sweep", "--preset", "tiny", "--layouts", "tp1", "--ranks", "1"]])
    func aDirectoryAnotherWriterHoldsIsRefusedNamingIt(command: [String]) throws {
        let dir = try Fixtures.scratch("claimed")
        try Data("{}".utf8).write(to: dir.appendingPathComponent("config.json"))
        try OutputDirectory.claim(dir.path)
        try FailureContract.expect(command + ["--out", dir.path], ranks: nil, code: 2, mentions: ["being written by another mla-tp", "pid \(getpid())"],
                                   watching: [dir])
    }
}
