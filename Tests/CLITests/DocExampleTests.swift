import Foundation
import Testing
import TestSupport

/// The shell examples of README.md and docs/*.md marked `console checked` (README, "Checked
/// examples"), run as a reader runs them: each command's output and exit status must be what the
/// example shows, and a failure names the Markdown file and the line of the example.
@Suite(.serialized, .tags(.mpirun), .skippedInFastLane) struct DocExampleTests {
    static let examples = DocExamples.all(in: MPIJob.repository)

    @Test(arguments: examples)
    func exampleShowsWhatItsCommandsPrint(example: DocExample) {
        DocExampleRun.check(example)
    }
}

/// What makes an example checked, without running one: the rule that every message and exit
/// status the docs show is in a checked block, and how shown output is compared.
@Suite struct DocExampleRuleTests {
    static func line(_ number: Int, _ text: String) -> DocExample.Line { DocExample.Line(number: number, text: text) }

    @Test func everyMessageAndExitStatusTheDocsShowIsInACheckedExample() throws {
        for file in DocExamples.files(in: MPIJob.repository) {
            let text = try String(contentsOfFile: MPIJob.repository + "/" + file, encoding: .utf8)
            for line in DocExamples.uncheckedResults(text) {
                let problem = "\(file):\(line.number): \"\(line.text)\" shows a message or an exit status in a block not marked "
                    + "```\(DocExamples.mark) — mark the block (and make it run as shown) or leave the result out"
                Issue.record(Comment(rawValue: problem), sourceLocation: DocExampleRun.location(file, line: line.number))
            }
        }
    }

    @Test func everyCheckedExampleHasACommandShowingOutput() {
        #expect(DocExampleTests.examples.count >= 10, "the docs' checked examples: \(DocExampleTests.examples)")
        for example in DocExampleTests.examples {
            #expect(!example.commands.isEmpty && example.commands.contains { !$0.expected.isEmpty },
                    "\(example) runs a command and shows what it prints", sourceLocation: DocExampleRun.location(example.file, line: example.line))
        }
    }

    @Test func commandsContinueAfterABackslashAndTrailingBlankLinesAreDropped() {
        let markdown = "text\n```console checked\n$ mla-tp plan \\\n    --tp 2\nfirst\n\n$ echo $?\n0\n```\n```sh\n$ not checked\n```\n"
        let examples = DocExamples.parse(markdown, file: "x.md")
        #expect(examples.count == 1 && examples[0].line == 2)
        let commands = examples[0].commands
        #expect(commands.map(\.text) == ["mla-tp plan \\\n    --tp 2", "echo $?"])
        #expect(commands.map(\.line) == [3, 7] && commands[0].expected == [Self.line(5, "first")])
    }

    /// Our stderr line may overtake the stdout lines before it through mpirun; it still has to be
    /// there, as shown, and so does every other line.
    @Test func aRankLineThatOvertakesStdoutStillMatchesButNothingElseMoves() {
        let lines = ["report", "...", "FAIL", "", "mla-tp: rank 0: the check failed — fix it"].enumerated().map {
            DocExample.Line(number: $0.offset + 1, text: $0.element)
        }
        let shown = ["report", "table", "FAIL", "", "mla-tp: rank 0: the check failed — fix it"]
        let overtaken = ["mla-tp: rank 0: the check failed — fix it", "report", "table", "FAIL", ""]
        #expect(DocExamples.mismatch(expected: lines, actual: shown) == nil)
        #expect(DocExamples.mismatch(expected: lines, actual: overtaken) != nil && DocExamples.matchesAcrossStreams(expected: lines, actual: overtaken))
        #expect(!DocExamples.matchesAcrossStreams(expected: lines, actual: ["mla-tp: rank 0: another message", "report", "FAIL"]))
        #expect(!DocExamples.matchesAcrossStreams(expected: lines, actual: ["mla-tp: rank 0: the check failed — fix it", "report", "PASS"]))
        #expect(!DocExamples.matchesAcrossStreams(expected: lines, actual: ["report", "FAIL"]))
    }

    @Test func elisionStandsForLinesOrTextAndEverythingElseIsExact() {
        let expected = [Self.line(1, "a"), Self.line(2, "..."), Self.line(3, "time ... ms, 4 B"), Self.line(4, "z")]
        #expect(DocExamples.mismatch(expected: expected, actual: ["a", "time 1.5 ms, 4 B", "z", ""]) == nil)
        #expect(DocExamples.mismatch(expected: expected, actual: ["a", "b", "c", "time  ms, 4 B", "z"]) == nil)
        let changed = DocExamples.mismatch(expected: expected, actual: ["a", "b", "time 1.5 ms, 5 B", "z"])
        #expect(changed?.expected == Self.line(3, "time ... ms, 4 B"))
        let extra = DocExamples.mismatch(expected: [Self.line(7, "exit 3")], actual: ["exit 3", "notice"])
        #expect(extra?.expected == nil && extra?.actual == "notice")
        let missing = DocExamples.mismatch(expected: [Self.line(7, "one"), Self.line(8, "two")], actual: ["one"])
        #expect(missing?.expected == Self.line(8, "two") && missing?.actual == nil)
    }

    @Test func unmarkedBlocksShowingAResultAreFound() {
        let markdown = "```\n$ mla-tp --tokens -1; echo \"exit $?\"\nmla-tp: rank 0: no\nexit 2\n```\n```console checked\n$ echo $?\n0\n```\n"
        #expect(DocExamples.uncheckedResults(markdown).map(\.number) == [2, 3, 4])
    }
}
