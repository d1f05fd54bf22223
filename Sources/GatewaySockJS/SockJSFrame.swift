import Foundation

/// SockJS protocol 0.3 frames (server to client) and the client's message payloads.
public enum SockJSFrame: Sendable, Equatable {
    case open
    case heartbeat
    case messages([String])
    case close(code: Int, reason: String)

    /// "Go away!": the session is closed (the STOMP connection ended).
    public static let goAway = SockJSFrame.close(code: 3000, reason: "Go away!")
    /// A second receiving request for a session that has one.
    public static let anotherConnection = SockJSFrame.close(code: 2010, reason: "Another connection still open")

    public var text: String {
        switch self {
        case .open: return "o"
        case .heartbeat: return "h"
        case .messages(let m): return "a[" + m.map(SockJSJSON.quote).joined(separator: ",") + "]"
        case .close(let code, let reason): return "c[\(code),\(SockJSJSON.quote(reason))]"
        }
    }
}

public enum SockJSJSON {
    /// A JSON string literal that every SockJS client reads back unchanged: quotes,
    /// backslashes and everything outside printable ASCII escaped as \uXXXX (UTF-16 units),
    /// which covers the ranges SockJS requires escaped.
    public static func quote(_ s: String) -> String {
        var out = "\""
        out.reserveCapacity(s.utf8.count + 2)
        for unit in s.utf16 {
            switch unit {
            case 0x22: out += "\\\""
            case 0x5C: out += "\\\\"
            case 0x0A: out += "\\n"
            case 0x20...0x7E: out.unicodeScalars.append(Unicode.Scalar(UInt8(unit)))
            default:
                let hex = String(unit, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            }
        }
        return out + "\""
    }

    public enum PayloadError: Error, Equatable {
        case empty
        case broken
    }

    /// A client's payload: a JSON array of strings (xhr_send, jsonp_send, websocket) or one
    /// JSON string (websocket).
    public static func messages(_ data: [UInt8]) throws -> [String] {
        guard !data.isEmpty else { throw PayloadError.empty }
        guard let value = try? JSONSerialization.jsonObject(with: Data(data), options: [.fragmentsAllowed]) else {
            throw PayloadError.broken
        }
        if let s = value as? String { return [s] }
        guard let array = value as? [Any] else { throw PayloadError.broken }
        var out: [String] = []
        out.reserveCapacity(array.count)
        for item in array {
            guard let s = item as? String else { throw PayloadError.broken }
            out.append(s)
        }
        return out
    }
}

/// How each polling or streaming transport wraps a frame in its HTTP response (SockJS 0.3).
public enum SockJSTransport: String, Sendable, CaseIterable {
    case xhr
    case xhrStreaming = "xhr_streaming"
    case eventSource = "eventsource"
    case htmlFile = "htmlfile"
    case jsonp

    /// Streaming transports keep the response open for many frames (until the byte limit).
    public var isStreaming: Bool { self == .xhrStreaming || self == .eventSource || self == .htmlFile }

    public var contentType: String {
        switch self {
        case .xhr, .xhrStreaming, .jsonp: return "application/javascript; charset=UTF-8"
        case .eventSource: return "text/event-stream; charset=UTF-8"
        case .htmlFile: return "text/html; charset=UTF-8"
        }
    }

    /// What the response starts with, before any frame.
    public func prelude(callback: String?) -> String {
        switch self {
        case .xhrStreaming: return String(repeating: "h", count: 2048) + "\n"
        case .eventSource: return "\r\n"
        case .htmlFile:
            let page = """
                <!doctype html>
                <html><head>
                  <meta http-equiv="X-UA-Compatible" content="IE=edge" />
                  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
                </head><body><h2>Don't panic!</h2>
                  <script>
                    document.domain = document.domain;
                    var c = parent.\(callback ?? "");
                    c.start();
                    function p(d) {c.message(d);};
                    window.onload = function() {c.stop();};
                  </script>
                """
            return page + String(repeating: " ", count: max(0, 1025 - page.utf8.count)) + "\r\n\r\n"
        case .xhr, .jsonp: return ""
        }
    }

    public func wrap(_ frame: SockJSFrame, callback: String?) -> String {
        let text = frame.text
        switch self {
        case .xhr, .xhrStreaming: return text + "\n"
        case .eventSource: return "data: " + text + "\r\n\r\n"
        case .htmlFile: return "<script>\np(" + SockJSJSON.quote(text) + ");\n</script>\r\n"
        case .jsonp: return "/**/" + (callback ?? "") + "(" + SockJSJSON.quote(text) + ");\r\n"
        }
    }

    /// A JSONP/htmlfile callback name must be a plain JavaScript identifier path.
    public static func validCallback(_ c: String) -> Bool {
        !c.isEmpty && c.utf8.count <= 256 && c.utf8.allSatisfy {
            ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x5F || $0 == 0x2E
        }
    }
}

/// `/stomp/<server>/<session>/<transport>`: server and session ids are non-empty and hold no dot.
public struct SockJSPath: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case greeting
        case info
        case iframe
        case rawWebSocket
        case session(server: String, session: String, transport: String)
    }

    public static func parse(_ path: String, prefix: String) -> Kind? {
        guard path == prefix || path.hasPrefix(prefix + "/") else { return nil }
        let rest = path.dropFirst(prefix.count)
        if rest.isEmpty || rest == "/" { return .greeting }
        let parts = rest.dropFirst().split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        if parts.count == 1 {
            if parts[0] == "info" { return .info }
            if parts[0] == "websocket" { return .rawWebSocket }
            if parts[0].hasPrefix("iframe") && parts[0].hasSuffix(".html") { return .iframe }
            return nil
        }
        guard parts.count == 3, !parts[0].isEmpty, !parts[1].isEmpty, !parts[0].contains("."), !parts[1].contains(".") else {
            return nil
        }
        return .session(server: parts[0], session: parts[1], transport: parts[2])
    }
}
