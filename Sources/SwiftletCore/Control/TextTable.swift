/// Plain text tables for `swiftlet-ctl`: left-aligned columns, two spaces apart.
enum TextTable {
    static func render(_ headers: [String], _ rows: [[String]]) -> String {
        var widths = headers.map { $0.count }
        for r in rows {
            for (i, cell) in r.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) }
        }
        func line(_ cells: [String]) -> String {
            var out = ""
            for (i, cell) in cells.enumerated() {
                let last = i == cells.count - 1
                out += last ? cell : cell + String(repeating: " ", count: max(0, widths[i] - cell.count) + 2)
            }
            return out
        }
        var lines = [line(headers)]
        lines += rows.map(line)
        return lines.joined(separator: "\n")
    }

    /// `key: value` lines, keys aligned.
    static func fields(_ pairs: [(String, String)]) -> String {
        let w = pairs.map { $0.0.count }.max() ?? 0
        return pairs.map { $0.0 + ":" + String(repeating: " ", count: w - $0.0.count + 1) + $0.1 }.joined(separator: "\n")
    }

    /// A cell that stays on one line and is not too wide.
    static func cell(_ s: String, max: Int = 48) -> String {
        var t = String(s.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7f ? "." : Character($0) })
        if t.count > max { t = String(t.prefix(max - 3)) + "..." }
        return t
    }
}
