// libFuzzer harness: config.json → MLAConfig.decode → validate(tp:) → what runs after it.
//
// Nothing here may trap or hang: decode and validate report bad input by throwing
// ConfigError, whose message is rendered as the CLI renders it.
// A config that validates for some tp is then handed to Rope(config:) and to
// ShardingPlan(config:tp:gate:) for every gate layout, as the CLI does before a run.
import CLibFuzzer
import Foundation
import MLA
import Planner

/// `FUZZ_VERBOSE=1 fuzz-config FILE…` prints what decode and validate made of each file (triage).
let verbose = getenv("FUZZ_VERBOSE") != nil

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let json = Data(bytes: data, count: size)
    let config: MLAConfig
    do {
        config = try MLAConfig.decode(json: json, file: "fuzz/config.json")
    } catch {
        let message = String(describing: error)   // the CLI prints every ConfigError
        if verbose { print("rejected: \(message)") }
        return 0
    }
    var ropeBuilt = false
    for tp in [1, 2, 3, 4, 8] {
        do {
            try config.validate(tp: tp)
        } catch let error as ConfigError {
            let message = error.description
            if verbose { print("tp=\(tp): \(message)") }
            continue
        } catch {
            preconditionFailure("validate(tp: \(tp)) threw a non-ConfigError: \(error)")
        }
        if verbose { print("tp=\(tp): valid") }
        if !ropeBuilt {
            let rope = Rope(config: config)
            precondition(rope.invFreq.count == config.qkRopeHeadDim / 2, "Rope has the wrong number of frequencies")
            _ = Rope.softmaxScale(config: config)
            ropeBuilt = true
        }
        for gate in GateLayout.allCases {
            let plan = ShardingPlan(config: config, tp: tp, gate: gate)
            _ = plan.bytesPerRank
            _ = plan.shardedBytes
        }
    }
    return 0
}

/// The executable's entry point (SwiftPM links `main` to `<module>_main`): runs libFuzzer.
@_cdecl("fuzz_config_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    var argc = argc
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzz(data!, size) }
}
