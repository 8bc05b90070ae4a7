/// A small SVG writer for the sweep's figures (Swift on Linux has no plotting library).
public enum SVG {}
