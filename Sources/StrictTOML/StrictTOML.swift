import TOMLKit

/// The one way a configuration text becomes a table: `TOMLPreflight` first (inputs that make
/// toml++ abort are refused), then TOMLKit, whose parse errors become a `ConfigError` with the
/// line. Every reader of TOML in the broker and the sidecars goes through it.
public enum StrictTOML {
    /// `key` names the document in the error (`(syntax)` by default).
    public static func parse(_ text: String, file: String? = nil, key: String = "(syntax)") throws -> TOMLTable {
        do {
            try TOMLPreflight.check(text)
        } catch var e as ConfigError {
            e.file = file
            e.key = key
            throw e
        }
        do {
            return try TOMLTable(string: text)
        } catch let e as TOMLParseError {
            throw ConfigError(file: file, key: key, line: e.source.begin.line, message: e.description)
        }
    }
}
