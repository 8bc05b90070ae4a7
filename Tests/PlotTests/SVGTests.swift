import Plot
import Testing

@Suite struct SVGTests {}
