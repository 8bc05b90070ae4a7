import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Plot
import Testing

/// Parses a document and counts its elements by name; nil when it is not well-formed XML.
final class ElementCounter: NSObject, XMLParserDelegate {
    var counts: [String: Int] = [:]
    var texts: [String] = []
    var attributes: [[String: String]] = []
    private var current = ""
    func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                attributes: [String: String] = [:]) {
        counts[name, default: 0] += 1
        self.attributes.append(attributes)
        current = ""
    }
    func parser(_ parser: XMLParser, foundCharacters string: String) { current += string }
    func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
        if name == "text" || name == "title" { texts.append(current) }
        current = ""
    }

    static func parse(_ doc: String) -> ElementCounter? {
        let counter = ElementCounter()
        let parser = XMLParser(data: Data(doc.utf8))
        parser.delegate = counter
        return parser.parse() ? counter : nil
    }
}

@Suite struct SVGTests {
    @Test func escapingCoversTheFiveXMLCharactersAndDropsControlCharacters() {
        #expect(SVG.escape("a<b & \"c\" 'd'>") == "a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;")
        #expect(SVG.escape("tab\tok\u{1}gone") == "tab\tokgone")
        #expect(SVG.escape("2(p−1)/p · n") == "2(p−1)/p · n")
    }

    @Test func hostileTextStaysTextInAWellFormedDocument() throws {
        var svg = SVG(width: 100, height: 50)
        let hostile = "</text><script>alert(1)</script> & \"quoted\""
        svg.text(hostile, x: 1, y: 2)
        svg.rect(x: 0, y: 0, width: 10, height: 10, fill: "red\" onload=\"x", title: "<title>")
        let parsed = try #require(ElementCounter.parse(svg.render()), "not well-formed:\n\(svg.render())")
        #expect(parsed.counts["script"] == nil)
        #expect(parsed.texts.contains(hostile))
        #expect(parsed.texts.contains("<title>"))
        #expect(parsed.attributes.contains { $0["fill"] == "red\" onload=\"x" })
    }

    @Test func numbersAreShortAndFinite() {
        #expect(SVG.num(3) == "3")
        #expect(SVG.num(2.5) == "2.5")
        #expect(SVG.num(1.23456) == "1.23")
        #expect(SVG.num(-0.001) == "0")
        #expect(SVG.num(.nan) == "0")
        #expect(SVG.num(1e7) == "10000000")
    }

    @Test func linearScaleMapsEndsAndRunsBackwardsForY() {
        let x = LinearScale(domain: (0, 10), range: (50, 250))
        #expect(x(0) == 50 && x(10) == 250 && x(5) == 150)
        let y = LinearScale(domain: (0, 100), range: (400, 40))      // pixel y grows downwards
        #expect(y(0) == 400 && y(100) == 40 && y(50) == 220)
        let flat = LinearScale(domain: (3, 3), range: (0, 10))       // an empty domain does not divide by zero
        #expect(flat(3).isFinite)
    }

    @Test func ticksAreRoundAndCoverTheDomain() {
        #expect(LinearScale.niceTicks(lower: 0, upper: 10, count: 5) == [0, 2, 4, 6, 8, 10])
        #expect(LinearScale.niceTicks(lower: 0, upper: 1, count: 4) == [0, 0.25, 0.5, 0.75, 1])
        #expect(LinearScale.niceTicks(lower: 0, upper: 470, count: 5) == [0, 100, 200, 300, 400])
        let small = LinearScale.niceTicks(lower: 0, upper: 0.003, count: 3)
        #expect(small.count >= 3 && small.allSatisfy { $0 >= 0 && $0 <= 0.003 + 1e-12 })
        #expect(LinearScale.niceUpper(470) == 500)
        #expect(LinearScale.niceUpper(0.9) == 1)
        #expect(formatTick(0.25) == "0.25" && formatTick(500) == "500" && formatTick(2.5) == "2.5" && formatTick(0.001) == "0.001")
    }

    @Test func barChartDrawsOneBarPerValueAndEveryLabel() throws {
        var chart = BarChart(title: "Bytes per rank", categories: ["tp=1", "tp=2", "tp=8"],
                             series: [.init(name: "column", values: [470, 235, 59], color: Palette.blue),
                                      .init(name: "replicated", values: [470, 470, 470], color: Palette.orange)],
                             xTitle: "tp", yTitle: "MB")
        chart.valueLabel = { "\(Int($0)) MB" }
        let doc = chart.render()
        let parsed = try #require(ElementCounter.parse(doc))
        let bars = parsed.attributes.filter { $0["fill"] == Palette.blue || $0["fill"] == Palette.orange }
        #expect(bars.count == 6 + 2)                                  // six bars and two legend swatches
        for label in ["tp=1", "tp=2", "tp=8", "column", "replicated", "59 MB", "470 MB", "Bytes per rank", "MB"] {
            #expect(parsed.texts.contains(label), "missing \(label)")
        }
        // Bar heights scale with the values: 470 is 470/59 times as tall as 59.
        let heights = bars.compactMap { $0["height"].flatMap(Double.init) }.filter { $0 > 12 }
        let tallest = try #require(heights.max()), shortest = try #require(heights.min())
        #expect(abs(tallest / shortest - 470.0 / 59.0) < 0.1)
    }

    @Test func lineChartAndTimelineAreWellFormed() throws {
        let line = LineChart(title: "Time by tp", series: [
            .init(name: "measured", points: [(1, 10), (2, 6), (4, 5)], color: Palette.blue),
            .init(name: "projected", points: [(1, 9), (2, 5), (4, 4.5)], color: Palette.orange, dashed: true),
        ], xTitle: "tp", yTitle: "ms", xTicks: [1, 2, 4])
        let l = try #require(ElementCounter.parse(line.render()))
        #expect(l.counts["polyline"] == 2 && l.counts["circle"] == 6)
        #expect(l.attributes.contains { $0["stroke-dasharray"] != nil })

        let timeline = TimelineChart(title: "One forward", lanes: ["rank 0", "rank 1"], segments: [
            [.init(kind: "compute", start: 0, end: 3), .init(kind: "allreduce", start: 3, end: 4)],
            [.init(kind: "compute", start: 0.1, end: 3.5), .init(kind: "allreduce", start: 3.5, end: 4)],
        ], kinds: [("compute", Palette.blue), ("allreduce", Palette.vermillion)], xTitle: "ms")
        let t = try #require(ElementCounter.parse(timeline.render()))
        #expect(t.texts.contains("rank 0") && t.texts.contains("rank 1") && t.texts.contains("allreduce"))
        // 4 segments + 2 swatches + the background.
        #expect(t.counts["rect"] == 7)
    }
}
