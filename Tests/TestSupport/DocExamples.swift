import Foundation

/// A shell session shown in README.md or docs/*.md that the test suite runs (README, "Checked
/// examples"): a fenced block whose info string is `console checked`. Lines that start with `$ `
/// are commands (a line ending in `\` continues on the next); the lines after a command, up to the
/// next one, are what it prints, stdout and stderr together, compared with what it really prints:
///
/// - a line that is `...` stands for any number of lines, and `...` inside a line for any text
///   (a time, a measured error, the part of a long line the example leaves out);
/// - every other character is compared exactly, trailing spaces and blank lines at the end aside.
///
/// An exit status is shown the way a shell shows it (`$ echo $?`, or `; echo "exit $?"` after the
/// command), so it is compared like any other output.
public struct DocExample: Sendable, CustomStringConvertible {
    /// One line of the Markdown file, by its number (1-based).
    public struct Line: Sendable, Equatable {
        public var number: Int
        public var text: String

        public init(number: Int, text: String) {
            self.number = number
            self.text = text
        }
    }

    /// A command and what the example shows it printing.
    public struct Command: Sendable {
        /// The `$ ` line (the first one, when the command continues).
        public var line: Int
        /// The command as a shell reads it: its lines, continuations included.
        public var text: String
        public var expected: [Line]
    }

    /// The file, relative to the repository root (`docs/gate-bug.md`).
    public var file: String
    /// The line of the opening fence.
    public var line: Int
    public var commands: [Command]

    public var description: String { "\(file):\(line)" }
}

/// Finding the examples: the checked ones, and the unmarked blocks that show what only a
/// checked one may show.
public enum DocExamples {
    /// The fence info string that marks a block as checked.
    public static let mark = "console checked"
    /// The prompt that starts a command line.
    static let prompt = "$ "
    /// The line that stands for any number of lines, and inside a line for any text.
    public static let elision = "..."

    /// The Markdown files whose examples are checked: README.md and docs/*.md, relative to `repository`.
    public static func files(in repository: String) -> [String] {
        let docs = (try? FileManager.default.contentsOfDirectory(atPath: repository + "/docs")) ?? []
        return ["README.md"] + docs.filter { $0.hasSuffix(".md") }.sorted().map { "docs/" + $0 }
    }

    /// Every checked example of every file in `files(in:)`.
    public static func all(in repository: String) -> [DocExample] {
        files(in: repository).flatMap { file in
            parse((try? String(contentsOfFile: repository + "/" + file, encoding: .utf8)) ?? "", file: file)
        }
    }

    /// A fenced block of a Markdown text: its info string, the fence's line, and its lines.
    struct Block {
        var info: String
        var line: Int
        var lines: [DocExample.Line]
    }

    static func blocks(_ markdown: String) -> [Block] {
        var blocks: [Block] = []
        var open: Block?
        for (index, raw) in markdown.components(separatedBy: "\n").enumerated() {
            let text = String(raw.reversed().drop { $0 == " " || $0 == "\r" }.reversed())
            let trimmed = text.drop { $0 == " " }
            if trimmed.hasPrefix("```") {
                if let block = open { blocks.append(block); open = nil } else {
                    open = Block(info: trimmed.dropFirst(3).trimmingCharacters(in: .whitespaces), line: index + 1, lines: [])
                }
            } else {
                open?.lines.append(DocExample.Line(number: index + 1, text: text))
            }
        }
        return blocks
    }

    /// The checked examples of one Markdown text.
    public static func parse(_ markdown: String, file: String) -> [DocExample] {
        blocks(markdown).filter { $0.info == mark }.map { block in
            DocExample(file: file, line: block.line, commands: commands(block.lines))
        }
    }

    static func commands(_ lines: [DocExample.Line]) -> [DocExample.Command] {
        var commands: [DocExample.Command] = []
        var continuing = false
        for line in lines {
            if continuing, var last = commands.popLast() {
                last.text += "\n" + line.text
                continuing = line.text.hasSuffix("\\")
                commands.append(last)
            } else if line.text.hasPrefix(prompt) {
                let text = String(line.text.dropFirst(prompt.count))
                commands.append(DocExample.Command(line: line.number, text: text, expected: []))
                continuing = text.hasSuffix("\\")
            } else if !commands.isEmpty {
                commands[commands.count - 1].expected.append(line)
            }
        }
        for i in commands.indices {
            while commands[i].expected.last?.text.isEmpty == true { commands[i].expected.removeLast() }
        }
        return commands
    }

    /// The lines of unmarked blocks that show what only a checked example may show: an error line
    /// of mla-tp (`mla-tp: rank R: …`) or an exit status (`$ echo $?`, `exit N`, `(exit N)`).
    public static func uncheckedResults(_ markdown: String) -> [DocExample.Line] {
        blocks(markdown).filter { $0.info != mark }.flatMap { block in
            block.lines.filter { line in
                let text = line.text.trimmingCharacters(in: .whitespaces)
                return text.contains("mla-tp: rank") || text.contains("echo $?") || text.contains("echo \"exit $?\"")
                    || text.range(of: #"^\(?exit [0-9]+\)?$"#, options: .regularExpression) != nil
            }
        }
    }

    /// Where `actual` departs from `expected` (with elisions), or nil when it matches: the expected
    /// line (nil past its end), and the first output line it could not account for (nil past the end).
    public static func mismatch(expected: [DocExample.Line], actual: [String]) -> (expected: DocExample.Line?, actual: String?)? {
        let actual = Array(actual.map { String($0.reversed().drop { $0 == " " }.reversed()) }.reversed().drop(while: \.isEmpty).reversed())
        var deepest: (i: Int, j: Int) = (0, 0)
        var failed = Set<[Int]>()
        func matches(_ i: Int, _ j: Int) -> Bool {
            if failed.contains([i, j]) { return false }
            if (i, j) > deepest { deepest = (i, j) }
            let ok: Bool
            if i == expected.count { ok = j == actual.count }
            else if expected[i].text == elision { ok = (j...actual.count).contains { matches(i + 1, $0) } }
            else { ok = j < actual.count && lineMatches(expected[i].text, actual[j]) && matches(i + 1, j + 1) }
            if !ok { failed.insert([i, j]) }
            return ok
        }
        if matches(0, 0) { return nil }
        var i = deepest.i
        while i < expected.count, expected[i].text == elision { i += 1 }
        return (i < expected.count ? expected[i] : nil, deepest.j < actual.count ? actual[deepest.j] : nil)
    }

    /// mpirun forwards each rank's stdout and stderr through separate channels, so a line of ours
    /// on stderr (`mla-tp: rank …`) can arrive before stdout lines the rank printed ahead of it
    /// (seen under load). Such an output matches when its `mla-tp: rank` lines and its other lines
    /// each match the example's, in order (trailing blank lines aside).
    public static func matchesAcrossStreams(expected: [DocExample.Line], actual: [String]) -> Bool {
        let ours = { (text: String) in text.hasPrefix("mla-tp: rank ") }
        guard expected.contains(where: { ours($0.text) }) else { return false }
        let rest = Array(expected.filter { !ours($0.text) }.reversed().drop { $0.text.isEmpty }.reversed())
        return mismatch(expected: expected.filter { ours($0.text) }, actual: actual.filter(ours)) == nil
            && mismatch(expected: rest, actual: actual.filter { !ours($0) }) == nil
    }

    /// Whether one output line matches one expected line, `...` standing for any text.
    public static func lineMatches(_ expected: String, _ actual: String) -> Bool {
        let parts = expected.components(separatedBy: elision)
        guard parts.count > 1 else { return expected == actual }
        guard actual.hasPrefix(parts[0]), actual.count >= parts[0].count + parts.last!.count else { return false }
        var rest = actual.dropFirst(parts[0].count)
        for part in parts.dropFirst().dropLast() {
            guard let range = rest.range(of: part) else { return false }
            rest = rest[range.upperBound...]
        }
        return rest.hasSuffix(parts.last!)
    }
}
