/// Text that came from outside — a path, a string in a checkpoint, a flag's value, a child's
/// output — as a message or a text report shows it: every control character (C0, DEL, C1, the
/// Unicode line and paragraph separators, and the bidirectional overrides) is written as an
/// escape (`\n`, `\r`, `\t`, else `\u{1B}`), so it can neither move the cursor, clear the
/// screen, reorder what follows nor start a line of its own. Every other character is kept.
/// JSON reports need nothing more: JSON's own string escapes do the same.
public enum OutsideText {
    /// `text` with every control character escaped.
    public static func escaped(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: isControl) else { return text }
        var out = ""
        for scalar in text.unicodeScalars {
            guard isControl(scalar) else { out.unicodeScalars.append(scalar); continue }
            switch scalar {
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default: out += "\\u{" + String(scalar.value, radix: 16, uppercase: true) + "}"
            }
        }
        return out
    }

    /// `text` with every control character but the newline escaped: for a multi-line report
    /// whose outside strings were escaped where they were put in.
    public static func escapedKeepingLines(_ text: String) -> String {
        text.split(separator: "\n", omittingEmptySubsequences: false).map { escaped(String($0)) }.joined(separator: "\n")
    }

    /// Whether `scalar` controls the terminal or the text's layout rather than showing a glyph.
    static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x00...0x1F, 0x7F...0x9F, 0x2028, 0x2029, 0x202A...0x202E, 0x2066...0x2069, 0x200E, 0x200F: return true
        default: return false
        }
    }
}
