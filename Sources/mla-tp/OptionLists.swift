import ArgumentParser
import Measure
import Report

/// Comma-separated integers with a lower bound, e.g. `--tp 1,2,4,8` or `--seqs 7,1,12`.
struct IntList<Bound: IntListBound>: OptionValue, Equatable {
    var values: [Int]

    init(_ values: [Int]) { self.values = values }

    init(parsing text: String) throws(OptionValueError) {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !parts.isEmpty, parts.allSatisfy({ ($0 ?? Int.min) >= Bound.minimum }) else {
            throw OptionValueError(value: text, expected: Bound.forms)
        }
        values = parts.map { $0! }
    }

    var description: String { values.map(String.init).joined(separator: ",") }
}

/// The lower bound of an `IntList` and how its forms read.
protocol IntListBound {
    static var minimum: Int { get }
    static var forms: String { get }
}
/// Sizes ≥ 1 (`--tp 1,2,4,8`).
enum Positive: IntListBound {
    static let minimum = 1
    static let forms = "comma-separated integers ≥ 1, e.g. 1,2,4,8"
}
/// Lengths ≥ 0 (`--seqs 7,1,12`; an empty sequence is allowed).
enum Lengths: IntListBound {
    static let minimum = 0
    static let forms = "comma-separated sequence lengths ≥ 0, e.g. 7,1,12"
}

/// Comma-separated names of a fixed set of forms, e.g. `--batches together,alone` or
/// `--chunks forward,chunk2,decode`.
struct NameList<Item: ListItem>: OptionValue {
    var values: [Item]

    init(parsing text: String) throws(OptionValueError) {
        let items = text.split(separator: ",", omittingEmptySubsequences: false).map { Item(name: $0.trimmingCharacters(in: .whitespaces)) }
        guard items.allSatisfy({ $0 != nil }) else { throw OptionValueError(value: text, expected: "comma-separated names, each one of " + Item.forms) }
        values = items.map { $0! }
    }

    var description: String { values.map(\.description).joined(separator: ",") }
}

/// An item of a `NameList`: parsed from its name, with the forms a message lists.
protocol ListItem: CustomStringConvertible {
    init?(name: String)
    static var forms: String { get }
}
extension Chunking: ListItem {}
extension BatchArrangement: ListItem {
    init?(name: String) { self.init(rawValue: name) }
    static var forms: String { allCases.map(\.rawValue).joined(separator: ", ") }
    public var description: String { rawValue }
}
