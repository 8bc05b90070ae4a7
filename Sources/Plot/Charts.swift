import Foundation

/// A named series colour set that stays readable in print and for common colour blindness
/// (Okabe–Ito).
public enum Palette {
    public static let blue = "#0072B2"
    public static let orange = "#E69F00"
    public static let green = "#009E73"
    public static let vermillion = "#D55E00"
    public static let purple = "#CC79A7"
    public static let sky = "#56B4E9"
    public static let grey = "#999999"
    public static let all = [blue, orange, green, vermillion, purple, sky, grey]
}

/// The plot area of a chart inside its SVG: margins, title, axis titles.
public struct Frame: Sendable {
    public var width: Double
    public var height: Double
    public var left: Double = 80
    public var right: Double = 24
    /// Title, subtitle and the legend row sit above the plot area.
    public var top: Double = 84
    public var bottom: Double = 64

    public init(width: Double = 760, height: Double = 440) {
        self.width = width
        self.height = height
    }

    public var plotX: (Double, Double) { (left, width - right) }
    /// Pixel y of the bottom and top of the plot area (bottom first: data grows upwards).
    public var plotY: (Double, Double) { (height - bottom, top) }

    /// Baseline of the legend row, between the subtitle and the plot area.
    public var legendY: Double { top - 16 }

    /// Title (and a smaller subtitle under it).
    public func drawTitle(_ svg: inout SVG, _ title: String, subtitle: String? = nil) {
        svg.text(title, x: left, y: 24, size: 16, bold: true)
        if let subtitle { svg.text(subtitle, x: left, y: 42, size: 11, fill: "#555") }
    }
}

/// Axis drawing: a numeric y axis with grid lines, and an x axis that is numeric or categorical.
public enum Axes {
    /// Grid lines, tick labels and the axis title of a vertical numeric axis.
    public static func drawY(_ svg: inout SVG, scale: LinearScale, frame: Frame, title: String, ticks: Int = 5) {
        let (x0, x1) = frame.plotX
        for t in scale.ticks(ticks) {
            let y = scale(t)
            svg.line(x1: x0, y1: y, x2: x1, y2: y, stroke: "#e4e4e4")
            svg.line(x1: x0 - 5, y1: y, x2: x0, y2: y, stroke: "#333")
            svg.text(formatTick(t), x: x0 - 8, y: y + 4, size: 11, anchor: .end)
        }
        svg.line(x1: x0, y1: frame.plotY.0, x2: x0, y2: frame.plotY.1, stroke: "#333")
        let mid = (frame.plotY.0 + frame.plotY.1) / 2
        svg.text(title, x: 18, y: mid, size: 12, anchor: .middle, rotate: -90)
    }

    /// Ticks, labels and the title of a horizontal numeric axis.
    public static func drawX(_ svg: inout SVG, scale: LinearScale, frame: Frame, title: String, ticks: Int = 6, grid: Bool = false) {
        let y = frame.plotY.0
        for t in scale.ticks(ticks) {
            let x = scale(t)
            if grid { svg.line(x1: x, y1: frame.plotY.1, x2: x, y2: y, stroke: "#e4e4e4") }
            svg.line(x1: x, y1: y, x2: x, y2: y + 5, stroke: "#333")
            svg.text(formatTick(t), x: x, y: y + 18, size: 11, anchor: .middle)
        }
        svg.line(x1: frame.plotX.0, y1: y, x2: frame.plotX.1, y2: y, stroke: "#333")
        svg.text(title, x: (frame.plotX.0 + frame.plotX.1) / 2, y: frame.height - 14, size: 12, anchor: .middle)
    }

    /// Category labels centred under each band, and the axis title.
    public static func drawCategories(_ svg: inout SVG, _ labels: [String], centers: [Double], frame: Frame, title: String) {
        let y = frame.plotY.0
        svg.line(x1: frame.plotX.0, y1: y, x2: frame.plotX.1, y2: y, stroke: "#333")
        for (label, x) in zip(labels, centers) {
            svg.line(x1: x, y1: y, x2: x, y2: y + 5, stroke: "#333")
            svg.text(label, x: x, y: y + 18, size: 11, anchor: .middle)
        }
        svg.text(title, x: (frame.plotX.0 + frame.plotX.1) / 2, y: frame.height - 14, size: 12, anchor: .middle)
    }
}

/// A legend: a swatch (box or line) and a label per entry, in a row at the top right.
public struct Legend: Sendable {
    public enum Mark: Sendable { case box, line, dashedLine }
    public var entries: [(label: String, color: String, mark: Mark)]

    public init(_ entries: [(label: String, color: String, mark: Mark)]) { self.entries = entries }

    /// Draws the entries right-aligned on one row at height `y`.
    public func draw(_ svg: inout SVG, right: Double, y: Double) {
        let widths = entries.map { 22 + Double($0.label.count) * 6.2 + 16 }   // swatch, label at ~6.2 px/char (11 px sans), gap
        var x = right - widths.reduce(0, +)
        for (e, w) in zip(entries, widths) {
            switch e.mark {
            case .box: svg.rect(x: x, y: y - 9, width: 14, height: 12, fill: e.color)
            case .line: svg.line(x1: x, y1: y - 3, x2: x + 18, y2: y - 3, stroke: e.color, width: 3)
            case .dashedLine: svg.line(x1: x, y1: y - 3, x2: x + 18, y2: y - 3, stroke: e.color, width: 3, dash: "6 4")
            }
            svg.text(e.label, x: x + 22, y: y + 1, size: 11)
            x += w
        }
    }
}

/// Grouped bars: one group per category, one bar per series, value labels on top.
public struct BarChart: Sendable {
    public struct Series: Sendable {
        public var name: String
        public var values: [Double]
        public var color: String
        public init(name: String, values: [Double], color: String) {
            self.name = name
            self.values = values
            self.color = color
        }
    }
    public var title: String
    public var subtitle: String?
    public var categories: [String]
    public var series: [Series]
    public var xTitle: String
    public var yTitle: String
    public var valueLabel: @Sendable (Double) -> String = { formatTick($0) }
    public var frame = Frame()

    public init(title: String, subtitle: String? = nil, categories: [String], series: [Series], xTitle: String, yTitle: String) {
        self.title = title
        self.subtitle = subtitle
        self.categories = categories
        self.series = series
        self.xTitle = xTitle
        self.yTitle = yTitle
    }

    public func render() -> String {
        var svg = SVG(width: frame.width, height: frame.height)
        frame.drawTitle(&svg, title, subtitle: subtitle)
        let maxValue = series.flatMap(\.values).filter(\.isFinite).max() ?? 1
        let y = LinearScale(domain: (0, LinearScale.niceUpper(maxValue * 1.08)), range: frame.plotY)
        Axes.drawY(&svg, scale: y, frame: frame, title: yTitle)
        let (x0, x1) = frame.plotX
        let band = (x1 - x0) / Double(max(categories.count, 1))
        let inner = band * 0.8
        let barWidth = inner / Double(max(series.count, 1))
        var centers: [Double] = []
        for (i, _) in categories.enumerated() {
            let left = x0 + Double(i) * band + (band - inner) / 2
            centers.append(x0 + (Double(i) + 0.5) * band)
            for (k, s) in series.enumerated() where i < s.values.count {
                let v = s.values[i]
                guard v.isFinite else { continue }
                let bx = left + Double(k) * barWidth
                svg.rect(x: bx + 1, y: y(v), width: barWidth - 2, height: y(0) - y(v), fill: s.color,
                         title: "\(s.name), \(categories[i]): \(valueLabel(v))")
                svg.text(valueLabel(v), x: bx + barWidth / 2, y: y(v) - 4, size: 10, anchor: .middle)
            }
        }
        Axes.drawCategories(&svg, categories, centers: centers, frame: frame, title: xTitle)
        Legend(series.map { ($0.name, $0.color, Legend.Mark.box) }).draw(&svg, right: frame.width - frame.right, y: frame.legendY)
        return svg.render()
    }
}

/// Lines over a numeric x (points marked), optionally dashed.
public struct LineChart: Sendable {
    public struct Series: Sendable {
        public var name: String
        public var points: [(x: Double, y: Double)]
        public var color: String
        public var dashed: Bool
        public init(name: String, points: [(x: Double, y: Double)], color: String, dashed: Bool = false) {
            self.name = name
            self.points = points
            self.color = color
            self.dashed = dashed
        }
    }
    public var title: String
    public var subtitle: String?
    public var series: [Series]
    public var xTitle: String
    public var yTitle: String
    /// Where to put x ticks (e.g. the tp values); nil: round numbers.
    public var xTicks: [Double]?
    /// Labels of `xTicks` (e.g. "8" at x = log2 8); nil: the tick values.
    public var xTickLabels: [String]?
    public var frame = Frame()

    public init(title: String, subtitle: String? = nil, series: [Series], xTitle: String, yTitle: String,
                xTicks: [Double]? = nil, xTickLabels: [String]? = nil) {
        self.title = title
        self.subtitle = subtitle
        self.series = series
        self.xTitle = xTitle
        self.yTitle = yTitle
        self.xTicks = xTicks
        self.xTickLabels = xTickLabels
    }

    public func render() -> String {
        var svg = SVG(width: frame.width, height: frame.height)
        frame.drawTitle(&svg, title, subtitle: subtitle)
        let xs = series.flatMap { $0.points.map(\.x) } + (xTicks ?? [])
        let ys = series.flatMap { $0.points.map(\.y) }.filter(\.isFinite)
        let pad = ((xs.max() ?? 1) - (xs.min() ?? 0)) * 0.05
        let x = LinearScale(domain: ((xs.min() ?? 0) - pad, (xs.max() ?? 1) + pad), range: frame.plotX)
        let y = LinearScale(domain: (0, LinearScale.niceUpper((ys.max() ?? 1) * 1.08)), range: frame.plotY)
        Axes.drawY(&svg, scale: y, frame: frame, title: yTitle)
        if let xTicks {
            Axes.drawCategories(&svg, xTickLabels ?? xTicks.map(formatTick), centers: xTicks.map { x($0) }, frame: frame, title: xTitle)
        } else {
            Axes.drawX(&svg, scale: x, frame: frame, title: xTitle)
        }
        for s in series {
            let pts = s.points.filter { $0.y.isFinite }.map { (x($0.x), y($0.y)) }
            svg.polyline(pts, stroke: s.color, width: 2.5, dash: s.dashed ? "7 5" : nil)
            for (p, raw) in zip(pts, s.points.filter { $0.y.isFinite }) {
                svg.circle(cx: p.0, cy: p.1, r: 4, fill: s.dashed ? "white" : s.color, stroke: s.color,
                           title: "\(s.name): \(formatTick(raw.x)) → \(formatTick(raw.y))")
            }
        }
        Legend(series.map { ($0.name, $0.color, $0.dashed ? Legend.Mark.dashedLine : .line) })
            .draw(&svg, right: frame.width - frame.right, y: frame.legendY)
        return svg.render()
    }
}

/// One row per lane (rank), coloured segments on a shared time axis.
public struct TimelineChart: Sendable {
    public struct Segment: Sendable {
        public var kind: String
        public var start: Double
        public var end: Double
        public init(kind: String, start: Double, end: Double) {
            self.kind = kind
            self.start = start
            self.end = end
        }
    }
    public var title: String
    public var subtitle: String?
    public var lanes: [String]
    public var segments: [[Segment]]
    /// Colour of each segment kind, in legend order.
    public var kinds: [(kind: String, color: String)]
    public var xTitle: String
    public var frame: Frame

    public init(title: String, subtitle: String? = nil, lanes: [String], segments: [[Segment]],
                kinds: [(kind: String, color: String)], xTitle: String) {
        self.title = title
        self.subtitle = subtitle
        self.lanes = lanes
        self.segments = segments
        self.kinds = kinds
        self.xTitle = xTitle
        frame = Frame(width: 760, height: 160 + 36 * Double(lanes.count))
        frame.left = 70
    }

    public func render() -> String {
        var svg = SVG(width: frame.width, height: frame.height)
        frame.drawTitle(&svg, title, subtitle: subtitle)
        let ends = segments.flatMap { $0.map(\.end) }
        let x = LinearScale(domain: (0, LinearScale.niceUpper(ends.max() ?? 1, count: 6)), range: frame.plotX)
        Axes.drawX(&svg, scale: x, frame: frame, title: xTitle, grid: true)
        let (bottom, top) = frame.plotY
        let laneHeight = (bottom - top) / Double(max(lanes.count, 1))
        let color = Dictionary(kinds.map { ($0.kind, $0.color) }, uniquingKeysWith: { a, _ in a })
        for (i, lane) in lanes.enumerated() {
            let y = top + Double(i) * laneHeight
            svg.text(lane, x: frame.left - 8, y: y + laneHeight / 2 + 4, size: 11, anchor: .end)
            for s in i < segments.count ? segments[i] : [] {
                svg.rect(x: x(s.start), y: y + laneHeight * 0.18, width: x(s.end) - x(s.start), height: laneHeight * 0.64,
                         fill: color[s.kind] ?? Palette.grey,
                         title: "\(lane) \(s.kind): \(formatTick(s.start)) – \(formatTick(s.end)) (\(formatTick(s.end - s.start)))")
            }
        }
        Legend(kinds.map { ($0.kind, $0.color, Legend.Mark.box) }).draw(&svg, right: frame.width - frame.right, y: frame.legendY)
        return svg.render()
    }
}
