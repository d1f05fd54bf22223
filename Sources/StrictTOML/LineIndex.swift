import Foundation

/// Finds the line of a dotted key in a TOML text, so that an error can name it. Best effort:
/// the key within its `[section]`, else its first occurrence anywhere.
public struct LineIndex: Sendable {
    let lines: [Substring]

    public init(text: String) { self.lines = text.split(separator: "\n", omittingEmptySubsequences: false) }

    public func line(of dotted: String) -> Int? {
        let parts = dotted.split(separator: ".")
        guard let key = parts.last else { return nil }
        let section = parts.dropLast().joined(separator: ".")
        var inSection = section.isEmpty
        var fallback: Int?
        for (i, raw) in lines.enumerated() {
            let l = raw.trimmingCharacters(in: .whitespaces)
            if l.hasPrefix("[") {
                let name = l.trimmingCharacters(in: CharacterSet(charactersIn: "[] "))
                if name == dotted { return i + 1 }
                inSection = name == section
                continue
            }
            let k = l.split(separator: "=", maxSplits: 1).first?.trimmingCharacters(in: .whitespaces)
            if k == String(key) {
                if inSection { return i + 1 }
                if fallback == nil { fallback = i + 1 }
            }
        }
        return fallback
    }
}
