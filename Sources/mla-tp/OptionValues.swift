import ArgumentParser
import Jobs
import Measure
import Report
import MLA
import TensorCore
import TensorParallel

/// An option value with a grammar: parsed in one place (`init(parsing:)`), and a value that fits
/// none of its forms is a usage error (exit 2) that lists them. Options declare it with
/// `transform: T.init(parsing:)`, so the parser shows the forms in its message.
protocol OptionValue: ExpressibleByArgument, CustomStringConvertible {
    init(parsing text: String) throws(OptionValueError)
}

extension OptionValue {
    public init?(argument: String) { try? self.init(parsing: argument) }
}

extension HardwareSpec: OptionValue {}
extension GateLayout: ExpressibleByArgument {}
extension DecodePath: ExpressibleByArgument {}
extension GateActivation: ExpressibleByArgument {}
extension BenchPhase: ExpressibleByArgument {}
extension Precision: ExpressibleByArgument {}
extension WeightQuantization: ExpressibleByArgument {}
extension KVCacheChoice: ExpressibleByArgument {}
extension ReductionChoice.Route: ExpressibleByArgument {}
extension LatentProjection: ExpressibleByArgument {}

/// `--repeat N`: the timed forwards of `sweep` and `sweep-step`, spelled as `bench` spells it.
/// `--repeats`, their old spelling, is still accepted (hidden) so that scripts keep working.
struct RepeatOptions: ParsableArguments {
    @Option(name: .customLong("repeat"), parsing: .unconditional, help: "Timed forwards (decode: steps), after one warm-up.")
    var value = 5

    @Option(name: .customLong("repeats"), parsing: .unconditional, help: .hidden)
    var alias: Int?

    var count: Int { alias ?? value }
    /// The flag as it was spelled, for messages.
    var flag: String { alias != nil ? "--repeats" : "--repeat" }
}

/// A usage error unless `value` ≥ `minimum`: names the flag, its value and the rule, and says
/// what the flag means (`--tokens -1 must be ≥ 0 — the tokens of the seeded input`).
func requireAtLeast(_ minimum: Int, _ flag: String, _ value: Int, _ meaning: String) throws {
    guard value >= minimum else { throw ValidationError("\(flag) \(value) must be ≥ \(minimum) — \(meaning)") }
}

/// A usage error unless `value` ≤ `maximum`, saying what to do instead.
func requireAtMost(_ maximum: Int, _ flag: String, _ value: Int, _ remedy: String) throws {
    guard value <= maximum else { throw ValidationError("\(flag) \(value) must be ≤ \(maximum) — \(remedy)") }
}

/// `M,N,K` of the rate probe's sgemm (x [M, K] · W with W [K, N]), each ≥ 1.
struct ProbeShape: OptionValue {
    var shape: RateProbe.Shape

    init(_ shape: RateProbe.Shape) { self.shape = shape }

    init(parsing text: String) throws(OptionValueError) {
        let v = text.split(separator: ",", omittingEmptySubsequences: false).compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard v.count == 3, v.allSatisfy({ $0 >= 1 }), text.split(separator: ",", omittingEmptySubsequences: false).count == 3 else {
            throw OptionValueError(value: text, expected: "M,N,K, three integers ≥ 1, e.g. 256,4096,7168")
        }
        shape = RateProbe.Shape(m: v[0], n: v[1], k: v[2])
    }

    var description: String { shape.dims.map(String.init).joined(separator: ",") }
}

/// A built-in model shape (`Presets.names`).
struct PresetName: OptionValue, Equatable {
    var name: String

    init(parsing text: String) throws(OptionValueError) {
        guard Presets.names.contains(text) else {
            throw OptionValueError(value: text, expected: "a preset: " + Presets.names.joined(separator: ", "))
        }
        name = text
    }

    var description: String { name }
}

/// `--set KEY=VALUE`: a config.json key and a JSON value (a bare word is taken as a string).
struct ConfigOverride: OptionValue {
    var key: String
    var value: String

    init(parsing text: String) throws(OptionValueError) {
        guard let eq = text.firstIndex(of: "="), eq != text.startIndex else {
            throw OptionValueError(value: text, expected: "KEY=VALUE with a non-empty config.json key", remedy: "e.g. --set use_bias=false or --set q_lora_rank=null")
        }
        key = String(text[..<eq])
        value = String(text[text.index(after: eq)...])
    }

    var description: String { "\(key)=\(value)" }
}

/// A size in bytes: `141GB`, `80GiB`, `512MB`, `2.5TB`, or a plain number of bytes.
struct ByteSize: OptionValue {
    var bytes: Int

    static let units: [(String, Double)] = [("TiB", 1099511627776), ("GiB", 1073741824), ("MiB", 1048576), ("KiB", 1024),
                                            ("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3), ("B", 1)]

    init(parsing text: String) throws(OptionValueError) {
        let t = text.trimmingCharacters(in: .whitespaces)
        let (unit, scale) = Self.units.first { t.hasSuffix($0.0) } ?? ("", 1)
        // At least one byte: 1e-30GB is not a size, and would be taken as none.
        guard let v = Double(t.dropLast(unit.count).trimmingCharacters(in: .whitespaces)), v.isFinite, v * scale >= 1, v * scale < 9e18 else {
            throw OptionValueError(value: text, expected: "a size of at least one byte such as 141GB, 80GiB, 512MB or a number of bytes")
        }
        bytes = Int(v * scale)
    }

    var description: String { "\(bytes)" }
}
