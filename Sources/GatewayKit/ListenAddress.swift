import StrictTOML

/// A gateway's `listener`: a port (on every address, like emqttd's `{listener, 61613, ...}`)
/// or "host:port" ("127.0.0.1:61613", "[::1]:61613").
public struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String = "0.0.0.0", port: Int) {
        self.host = host
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// Reads `key` of `section`: an integer port or a "host:port" string; `fallback` when absent.
    public static func read(_ section: ConfigSection, _ key: String, default fallback: ListenAddress) throws -> ListenAddress {
        if let port = try? section.int(key, range: 0...65_535) {
            return ListenAddress(port: port)
        }
        guard let text = try section.string(key) else { return fallback }
        guard let parsed = parse(text) else {
            throw section.error(key, "expected a port or \"host:port\", got \"\(text)\"")
        }
        return parsed
    }

    public static func parse(_ text: String) -> ListenAddress? {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
              (0...65_535).contains(port) else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { return nil }
        return ListenAddress(host: host, port: port)
    }
}
