import Foundation

/// A small SVG writer for the sweep's figures (Swift on Linux has no plotting library).
///
/// `SVG` collects elements in drawing order and renders one standalone document; every piece
/// of text goes through `SVG.escape`, so labels can hold `<`, `&` or quotes. The charts in
/// Charts.swift (bars, lines, timelines) are built from it with `Axes` and `LinearScale`.
public struct SVG: Sendable {
    public let width: Double
    public let height: Double
    public private(set) var elements: [String] = []

    public init(width: Double, height: Double) {
        self.width = width
        self.height = height
    }

    /// Escapes text for XML character data and attribute values.
    public static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.count)
        for ch in s {
            switch ch {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            default:
                // Control characters other than tab/newline are not allowed in XML 1.0.
                if let a = ch.asciiValue, a < 0x20, a != 0x09, a != 0x0A, a != 0x0D { continue }
                out.append(ch)
            }
        }
        return out
    }

    /// A number as SVG wants it: short, no exponent, no "-0".
    public static func num(_ v: Double) -> String {
        guard v.isFinite else { return "0" }
        let r = (v * 100).rounded() / 100
        if r == r.rounded() { return String(Int(r)) }
        var s = String(r)
        if s.hasPrefix("-0.") && r == 0 { s = "0" }
        return s
    }

    public mutating func rect(x: Double, y: Double, width w: Double, height h: Double, fill: String,
                              stroke: String? = nil, strokeWidth: Double = 1, opacity: Double = 1, title: String? = nil) {
        var a = "<rect x=\"\(SVG.num(x))\" y=\"\(SVG.num(y))\" width=\"\(SVG.num(max(w, 0)))\" height=\"\(SVG.num(max(h, 0)))\" fill=\"\(SVG.escape(fill))\""
        if let stroke { a += " stroke=\"\(SVG.escape(stroke))\" stroke-width=\"\(SVG.num(strokeWidth))\"" }
        if opacity < 1 { a += " fill-opacity=\"\(SVG.num(opacity))\"" }
        if let title { elements.append(a + "><title>\(SVG.escape(title))</title></rect>") } else { elements.append(a + "/>") }
    }

    public mutating func line(x1: Double, y1: Double, x2: Double, y2: Double, stroke: String, width w: Double = 1, dash: String? = nil) {
        var a = "<line x1=\"\(SVG.num(x1))\" y1=\"\(SVG.num(y1))\" x2=\"\(SVG.num(x2))\" y2=\"\(SVG.num(y2))\" stroke=\"\(SVG.escape(stroke))\" stroke-width=\"\(SVG.num(w))\""
        if let dash { a += " stroke-dasharray=\"\(SVG.escape(dash))\"" }
        elements.append(a + "/>")
    }

    public mutating func polyline(_ points: [(Double, Double)], stroke: String, width w: Double = 2, dash: String? = nil) {
        guard !points.isEmpty else { return }
        let pts = points.map { "\(SVG.num($0.0)),\(SVG.num($0.1))" }.joined(separator: " ")
        var a = "<polyline points=\"\(pts)\" fill=\"none\" stroke=\"\(SVG.escape(stroke))\" stroke-width=\"\(SVG.num(w))\" stroke-linejoin=\"round\""
        if let dash { a += " stroke-dasharray=\"\(SVG.escape(dash))\"" }
        elements.append(a + "/>")
    }

    public mutating func circle(cx: Double, cy: Double, r: Double, fill: String, stroke: String? = nil, title: String? = nil) {
        var a = "<circle cx=\"\(SVG.num(cx))\" cy=\"\(SVG.num(cy))\" r=\"\(SVG.num(r))\" fill=\"\(SVG.escape(fill))\""
        if let stroke { a += " stroke=\"\(SVG.escape(stroke))\"" }
        if let title { elements.append(a + "><title>\(SVG.escape(title))</title></circle>") } else { elements.append(a + "/>") }
    }

    public enum Anchor: String, Sendable { case start, middle, end }

    public mutating func text(_ s: String, x: Double, y: Double, size: Double = 12, anchor: Anchor = .start,
                              fill: String = "#222", bold: Bool = false, rotate: Double = 0, baseline: String? = nil) {
        var a = "<text x=\"\(SVG.num(x))\" y=\"\(SVG.num(y))\" font-size=\"\(SVG.num(size))\" text-anchor=\"\(anchor.rawValue)\" fill=\"\(SVG.escape(fill))\""
        if bold { a += " font-weight=\"bold\"" }
        if rotate != 0 { a += " transform=\"rotate(\(SVG.num(rotate)) \(SVG.num(x)) \(SVG.num(y)))\"" }
        if let baseline { a += " dominant-baseline=\"\(SVG.escape(baseline))\"" }
        elements.append(a + ">\(SVG.escape(s))</text>")
    }

    /// The whole document.
    public func render() -> String {
        var s = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        s += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(SVG.num(width))\" height=\"\(SVG.num(height))\" "
        s += "viewBox=\"0 0 \(SVG.num(width)) \(SVG.num(height))\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n"
        s += "<rect x=\"0\" y=\"0\" width=\"\(SVG.num(width))\" height=\"\(SVG.num(height))\" fill=\"white\"/>\n"
        for e in elements { s += e + "\n" }
        return s + "</svg>\n"
    }
}

/// Maps a data interval onto a pixel interval (either may run backwards, as a y axis does).
public struct LinearScale: Sendable, Equatable {
    public var domain: (lower: Double, upper: Double)
    public var range: (lower: Double, upper: Double)

    public init(domain: (Double, Double), range: (Double, Double)) {
        self.domain = (domain.0, domain.1 == domain.0 ? domain.0 + 1 : domain.1)
        self.range = range
    }

    public func callAsFunction(_ v: Double) -> Double {
        range.lower + (v - domain.lower) / (domain.upper - domain.lower) * (range.upper - range.lower)
    }

    /// Round tick values (1, 2, 2.5 or 5 × 10^k steps) covering the domain, about `count` of them.
    public func ticks(_ count: Int = 5) -> [Double] {
        LinearScale.niceTicks(lower: domain.lower, upper: domain.upper, count: count)
    }

    public static func niceStep(span: Double, count: Int) -> Double {
        guard span > 0, count > 0 else { return 1 }
        let raw = span / Double(count)
        let mag = pow10(floorLog10(raw))
        let f = raw / mag
        let nice: Double = f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10
        return nice * mag
    }

    public static func niceTicks(lower: Double, upper: Double, count: Int) -> [Double] {
        let step = niceStep(span: upper - lower, count: count)
        var v = (lower / step).rounded(.up) * step
        var out: [Double] = []
        while v <= upper + step * 1e-9 {
            out.append(abs(v) < step * 1e-9 ? 0 : v)
            v += step
        }
        return out
    }

    /// A domain upper bound rounded up to a tick, so the axis ends on a labelled value.
    public static func niceUpper(_ maxValue: Double, count: Int = 5) -> Double {
        guard maxValue > 0 else { return 1 }
        let step = niceStep(span: maxValue, count: count)
        return (maxValue / step).rounded(.up) * step
    }

    public static func == (a: LinearScale, b: LinearScale) -> Bool {
        a.domain == b.domain && a.range == b.range
    }

    static func floorLog10(_ x: Double) -> Int {
        var e = 0
        var v = x
        while v >= 10 { v /= 10; e += 1 }
        while v < 1 { v *= 10; e -= 1 }
        return e
    }

    static func pow10(_ e: Int) -> Double {
        var r = 1.0
        if e >= 0 { for _ in 0..<e { r *= 10 } } else { for _ in 0..<(-e) { r /= 10 } }
        return r
    }
}

/// A tick label: about three significant digits, no trailing zeros, no exponent.
public func formatTick(_ v: Double) -> String {
    guard v != 0, v.isFinite else { return "0" }
    let a = abs(v)
    let decimals = a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : min(8, Int((-log10(a)).rounded(.down)) + 2)
    var s = String(format: "%.\(decimals)f", v)
    if s.contains(".") {
        while s.hasSuffix("0") { s.removeLast() }
        if s.hasSuffix(".") { s.removeLast() }
    }
    return s == "-0" ? "0" : s
}
