import NIOCore

/// The STOMP versions this gateway speaks. Their differences here: header escaping (none in
/// 1.0; `\n \c \\` in 1.1; and `\r` in 1.2), heart-beating and NACK (1.1+), and which header
/// an ACK names its message by (`message-id` before 1.2, `id` in 1.2).
public enum StompVersion: String, Sendable, Comparable, CaseIterable {
    case v1_0 = "1.0"
    case v1_1 = "1.1"
    case v1_2 = "1.2"

    public static func < (a: StompVersion, b: StompVersion) -> Bool { a.rawValue < b.rawValue }
}

/// One STOMP frame: a command, ordered headers (repeats allowed; the first wins on reading,
/// STOMP 1.2 "Repeated Header Entries") and a body.
public struct StompFrame: Sendable, Equatable {
    public var command: String
    public var headers: [(String, String)]
    public var body: ByteBuffer

    public init(_ command: String, _ headers: [(String, String)] = [], body: ByteBuffer = ByteBuffer()) {
        self.command = command
        self.headers = headers
        self.body = body
    }

    public subscript(name: String) -> String? {
        for (k, v) in headers where k == name { return v }
        return nil
    }

    public static func == (a: StompFrame, b: StompFrame) -> Bool {
        a.command == b.command && a.body == b.body && a.headers.count == b.headers.count
            && zip(a.headers, b.headers).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
    }

    /// CONNECT, CONNECTED and STOMP frames never escape their headers (STOMP 1.2 "Value Encoding").
    static func escapes(_ command: String, version: StompVersion) -> Bool {
        version != .v1_0 && command != "CONNECT" && command != "CONNECTED" && command != "STOMP"
    }

    /// Appends the frame: headers escaped for `version`, `content-length` added when absent,
    /// the body, NUL.
    public func encode(into out: inout ByteBuffer, version: StompVersion) {
        let escape = Self.escapes(command, version: version)
        out.writeString(command)
        out.writeInteger(UInt8(ascii: "\n"))
        var hasLength = false
        for (k, v) in headers {
            if k == "content-length" { hasLength = true }
            writeHeaderText(k, escape: escape, version: version, into: &out)
            out.writeInteger(UInt8(ascii: ":"))
            writeHeaderText(v, escape: escape, version: version, into: &out)
            out.writeInteger(UInt8(ascii: "\n"))
        }
        if !hasLength && (body.readableBytes > 0 || command == "MESSAGE") {
            out.writeString("content-length:\(body.readableBytes)\n")
        }
        out.writeInteger(UInt8(ascii: "\n"))
        out.writeImmutableBuffer(body)
        out.writeInteger(UInt8(0))
    }

    public func encoded(version: StompVersion) -> ByteBuffer {
        var b = ByteBuffer()
        b.reserveCapacity(64 + body.readableBytes + headers.reduce(0) { $0 + $1.0.utf8.count + $1.1.utf8.count + 2 })
        encode(into: &b, version: version)
        return b
    }

    private func writeHeaderText(_ s: String, escape: Bool, version: StompVersion, into out: inout ByteBuffer) {
        guard escape else {
            // 1.0 has no escapes: a newline or colon in a value cannot be sent; it becomes a space.
            if version == .v1_0 || !s.utf8.contains(where: { $0 == 10 || $0 == 13 }) {
                out.writeBytes(s.utf8.map { $0 == 10 || $0 == 13 ? 32 : $0 })
            } else {
                out.writeString(s)
            }
            return
        }
        for byte in s.utf8 {
            switch byte {
            case UInt8(ascii: "\\"): out.writeString("\\\\")
            case UInt8(ascii: "\n"): out.writeString("\\n")
            case UInt8(ascii: ":"): out.writeString("\\c")
            case UInt8(ascii: "\r") where version == .v1_2: out.writeString("\\r")
            case UInt8(ascii: "\r"): out.writeInteger(UInt8(32))
            default: out.writeInteger(byte)
            }
        }
    }
}
