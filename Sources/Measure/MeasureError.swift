import Foundation
import SafeTensors
import Launch

/// Why a measurement or a report could not be made. Each case says what to do.
public enum MeasureError: Error, CustomStringConvertible {
    /// A file that cannot be read, or is not what it should be (an input error).
    case unreadable(path: String, what: String, detail: String, remedy: String)
    /// A file that lacks a needed part (an input error).
    case incomplete(path: String, what: String, remedy: String)
    /// A child job that failed (an internal error: the job's own message says more).
    case childFailed(what: String, result: ChildProcess.Result, remedy: String)

    public var description: String {
        switch self {
        case let .unreadable(path, what, detail, remedy): return "\(path) is not a readable \(what) (\(detail)) — \(remedy)"
        case let .incomplete(path, what, remedy): return "\(path) lacks \(what) — \(remedy)"
        case let .childFailed(what, result, remedy):
            return "\(what) failed (status \(result.status)\(result.timedOut ? ", timed out" : "")): \(result.lastLine) — \(remedy)"
        }
    }

    /// Whether this is the input's fault (exit 4) rather than an internal failure.
    public var isInputError: Bool {
        if case .childFailed = self { return false }
        return true
    }

    /// The largest JSON file read back (a bench report of many samples is a few MB).
    public static let maxJSONBytes = 64 << 20

    /// Decodes a JSON file written by mla-tp (non-finite numbers as "nan", "inf", "-inf").
    public static func decode<T: Decodable>(_ type: T.Type, path: String, what: String, remedy: String) throws -> T {
        let data: Data
        do throws(InputFileError) { data = try RegularFile.read(path, limit: maxJSONBytes, what: what) } catch {
            throw MeasureError.unreadable(path: path, what: what, detail: error.reason, remedy: remedy)
        }
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        do { return try decoder.decode(T.self, from: data) } catch {
            throw MeasureError.unreadable(path: path, what: what, detail: "\(error)", remedy: remedy)
        }
    }
}
