/// Checks that stand between a TOML text and TOMLKit's parser (toml++ 3.4.0); call before
/// `TOMLTable(string:)`.
///
/// toml++ asserts, and in release builds assumes, preconditions that some invalid documents
/// break, so they abort the process in a debug build and reach undefined behaviour in a
/// release build where a parse error is due. Found by Fuzz/fuzz-config (docs/fuzzing.md):
/// - a table header whose name does not start with a key character: `[=]`, `[.a]`, `[[[1]]]`,
///   `[é]`, `[` at the end of a line (`parse_key`; fixed upstream in marzer/tomlplusplus#301,
///   after the version TOMLKit vendors);
/// - `}` or a non-ASCII line break (U+0085, U+2028, U+2029) where an array expects a value:
///   `a = [ }`, `a = [1, }` (`parse_value`);
/// - a date and `T` not followed by a digit: `a = 1978-05-27Tx:00` (`parse_time`);
/// - a date, a space and one digit: `a = 1979-05-27 7` (`parse_value`).
/// toml++ also reads the text as a C string, so a NUL would silently end the document.
///
/// The scan follows strings, comments and brackets the way TOML does, so valid documents pass
/// untouched; on anything it does not follow it stops, leaving the error to toml++.
public enum TOMLPreflight {
    public static func check(_ text: String) throws {
        var scanner = Scanner(scalars: Array(text.unicodeScalars))
        try scanner.run()
    }

    private struct Scanner {
        let scalars: [Unicode.Scalar]
        var i = 0
        var line = 1
        /// Open `[` (array) and `{` (inline table) of the value being read.
        var open: [Unicode.Scalar] = []
        /// Inside an array, after `[` or `,`: the next token must be a value or `]`.
        var expectingValue = false
        /// After `=` or where an array expects a value: the next token is a value.
        var atValue = false

        init(scalars: [Unicode.Scalar]) { self.scalars = scalars }

        func error(_ message: String) -> ConfigError {
            ConfigError(key: "(syntax)", line: line, message: message)
        }

        static func isLineBreakOutsideASCII(_ c: Unicode.Scalar) -> Bool {
            c == "\u{85}" || c == "\u{2028}" || c == "\u{2029}"
        }

        mutating func run() throws {
            if let nul = scalars.firstIndex(of: "\0") {
                line = 1 + scalars[..<nul].lazy.filter { $0 == "\n" }.count
                throw error("a NUL character is not allowed in TOML")
            }
            var atLineStart = true
            while i < scalars.count {
                let c = scalars[i]
                if atLineStart && open.isEmpty {
                    // Blanks toml++ skips before a statement, and a byte order mark.
                    if c == " " || c == "\t" || c == "\u{FEFF}" { i += 1; continue }
                    atLineStart = false
                    if c == "[" {
                        try header()
                        continue
                    }
                }
                switch c {
                case "\n":
                    line += 1
                    i += 1
                    if open.isEmpty { atLineStart = true }
                case " ", "\t", "\r":
                    i += 1
                case "#":
                    while i < scalars.count && scalars[i] != "\n" { i += 1 }
                case "\"", "'":
                    expectingValue = false
                    atValue = false
                    guard skipString() else { return }
                case "[", "{":
                    open.append(c)
                    expectingValue = c == "["
                    atValue = expectingValue
                    i += 1
                case "]", "}":
                    if expectingValue && c == "}" {
                        throw error("an array expects a value or ']', found '}'")
                    }
                    expectingValue = false
                    atValue = false
                    guard open.last == (c == "]" ? "[" : "{") else { return }  // toml++ refuses it
                    open.removeLast()
                    i += 1
                case ",":
                    expectingValue = open.last == "["
                    atValue = expectingValue
                    i += 1
                case "=":
                    atValue = true
                    i += 1
                default:
                    if expectingValue && Self.isLineBreakOutsideASCII(c) {
                        throw error("an array expects a value or ']', found U+\(String(c.value, radix: 16, uppercase: true))")
                    }
                    if atValue { try dateTime() }
                    expectingValue = false
                    atValue = false
                    i += 1
                }
            }
        }

        static func isValueTerminator(_ c: Unicode.Scalar) -> Bool {
            c == "]" || c == "}" || c == "," || c == "#" || c.properties.isWhitespace
        }

        /// A value starting at `i`: a date (`1979-05-27`) followed by `T` needs a digit next,
        /// and one followed by a space and a digit more than that digit.
        func dateTime() throws {
            func digit(_ k: Int) -> Bool { k < scalars.count && ("0"..."9").contains(scalars[k]) }
            var end = i
            while end < scalars.count && !Self.isValueTerminator(scalars[end]) { end += 1 }
            if end - i == 10, digit(i), scalars[i + 4] == "-", scalars[i + 7] == "-",
               end + 2 < scalars.count, scalars[end] == " ", digit(end + 1), Self.isValueTerminator(scalars[end + 2]) {
                throw error("a date and a space must be followed by a time (HH:MM:SS)")
            }
            guard (0..<4).allSatisfy({ digit(i + $0) }), i + 10 < scalars.count, scalars[i + 4] == "-",
                  digit(i + 5), digit(i + 6), scalars[i + 7] == "-", digit(i + 8), digit(i + 9),
                  scalars[i + 10] == "T" || scalars[i + 10] == "t" else { return }
            guard digit(i + 11) else { throw error("a date and 'T' must be followed by a time") }
        }

        /// A table header at `i`: its name must start with a key character. Skips the line.
        mutating func header() throws {
            var j = i + 1
            if j < scalars.count && scalars[j] == "[" { j += 1 }
            while j < scalars.count && (scalars[j] == " " || scalars[j] == "\t") { j += 1 }
            let first = j < scalars.count ? scalars[j] : nil
            switch first {
            case nil: break  // the end of the document: toml++ reports it
            case let c? where ("a"..."z").contains(c) || ("A"..."Z").contains(c) || ("0"..."9").contains(c)
                || c == "_" || c == "-" || c == "\"" || c == "'" || c == "]":
                break
            case let c?:
                let found = c == "\n" || c == "\r" ? "the end of the line" : "U+" + String(c.value, radix: 16, uppercase: true)
                throw error("a table header must start with a key (bare, \"quoted\" or 'literal'), found \(found)")
            }
            // The rest of the header line; quoted keys may hold ']' or '#'.
            i = j
            while i < scalars.count && scalars[i] != "\n" {
                if scalars[i] == "\"" || scalars[i] == "'" {
                    guard skipString() else { i = scalars.count; return }
                } else if scalars[i] == "#" {
                    while i < scalars.count && scalars[i] != "\n" { i += 1 }
                } else {
                    i += 1
                }
            }
        }

        /// Skips the string starting at `i` (basic or literal, single- or multi-line). False
        /// when it does not end as TOML requires (toml++ reports that).
        mutating func skipString() -> Bool {
            let quote = scalars[i]
            let basic = quote == "\""
            let multiLine = i + 2 < scalars.count && scalars[i + 1] == quote && scalars[i + 2] == quote
            i += multiLine ? 3 : 1
            while i < scalars.count {
                let c = scalars[i]
                if basic && c == "\\" {
                    if i + 1 < scalars.count && scalars[i + 1] == "\n" { line += 1 }
                    i += 2
                    continue
                }
                if c == "\n" {
                    guard multiLine else { return false }
                    line += 1
                }
                if c == quote {
                    if !multiLine { i += 1; return true }
                    if i + 2 < scalars.count && scalars[i + 1] == quote && scalars[i + 2] == quote {
                        // Up to two more quotes belong to the content: """"" ends with 2 in it.
                        i += 3
                        while i < scalars.count && scalars[i] == quote { i += 1 }
                        return true
                    }
                }
                i += 1
            }
            return false
        }
    }
}
