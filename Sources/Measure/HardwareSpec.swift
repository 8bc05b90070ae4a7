import Foundation
import Launch
import MLA
import Planner
import TensorCore

/// The hardware a projection runs on, as `--hardware` names it.
public enum HardwareSpec: Sendable, Equatable, CustomStringConvertible {
    case h100, h200
    /// This machine's measured rates (a probe, a rates file or a bench report).
    case cpuMeasured
    /// `custom:TFLOPS,HBM_GBps,LINK_GBps,LINK_LATENCY_us`.
    case custom(Hardware)

    /// The accepted forms, for help and error messages.
    public static let forms = "h100, h200, cpu-measured or custom:TFLOPS,HBM_GBps,LINK_GBps,LINK_LATENCY_us (e.g. custom:989,3350,450,1)"

    public init(parsing text: String) throws(OptionValueError) {
        switch text {
        case "h100": self = .h100
        case "h200": self = .h200
        case "cpu-measured": self = .cpuMeasured
        default:
            guard text.hasPrefix("custom:"), let hw = try? Hardware.custom(String(text.dropFirst("custom:".count))) else {
                throw OptionValueError(value: text, expected: Self.forms)
            }
            self = .custom(hw)
        }
    }

    public var description: String {
        switch self {
        case .h100: return "h100"
        case .h200: return "h200"
        case .cpuMeasured: return "cpu-measured"
        case let .custom(hw): return "custom:\(hw.flopsPerSecond / 1e12),\(hw.memoryBytesPerSecond / 1e9),\(hw.linkBytesPerSecond / 1e9),\(hw.linkLatencySeconds * 1e6)"
        }
    }

    /// The rates: published figures, or this machine's (from `ratesFile`, else a probe run with
    /// `probe` as a child job).
    /// The model for this choice; `cpu-measured` at the rate of the kernel `precision`'s projections run on.
    public func hardware(ratesFile: String?, precision: Precision = .f32, probe: () throws -> MeasuredRates) throws -> Hardware {
        switch self {
        case .h100: return .h100
        case .h200: return .h200
        case let .custom(hw): return hw
        case .cpuMeasured: return try (ratesFile.map { try MeasuredRates.load($0) } ?? probe()).hardware(for: precision)
        }
    }
}

/// An option value that fits none of its accepted forms: names the value and the forms.
public struct OptionValueError: Error, CustomStringConvertible, Equatable {
    public var value: String
    public var expected: String
    /// What to pass instead (default: a value of one of the forms).
    public var remedy: String
    public init(value: String, expected: String, remedy: String = "pass a value of that form") {
        self.value = value
        self.expected = expected
        self.remedy = remedy
    }
    /// What was expected and what to do (the parser's message already quotes the value and names the option).
    public var description: String { "expected \(expected) — \(remedy)" }
}
