import NIOCore

/// Writes one flat JSON object straight into a `ByteBuffer`, for payloads the broker makes
/// per CONNECT and DISCONNECT ($SYS client events). `JSONSerialization` (boxing every value,
/// sorting keys through ICU collation) was a third of the broker's CPU in the CONNECT-rate
/// benchmark. Callers write keys in the order they want them to appear.
struct JSONObjectWriter {
    private var buffer: ByteBuffer
    private var empty = true
    private static let hex = Array("0123456789abcdef".utf8)

    init(capacity: Int = 192) {
        buffer = ByteBufferAllocator().buffer(capacity: capacity)
        buffer.writeInteger(UInt8(ascii: "{"))
    }

    mutating func field(_ key: StaticString, _ value: String?) {
        writeKey(key)
        guard let value else {
            buffer.writeStaticString("null")
            return
        }
        Self.writeString(value, into: &buffer)
    }

    mutating func field(_ key: StaticString, _ value: Int) {
        writeKey(key)
        buffer.writeString(String(value))
    }

    mutating func field(_ key: StaticString, _ value: Bool) {
        writeKey(key)
        buffer.writeStaticString(value ? "true" : "false")
    }

    /// The finished object.
    mutating func finish() -> ByteBuffer {
        buffer.writeInteger(UInt8(ascii: "}"))
        return buffer
    }

    private mutating func writeKey(_ key: StaticString) {
        if !empty { buffer.writeInteger(UInt8(ascii: ",")) }
        empty = false
        buffer.writeInteger(UInt8(ascii: "\""))
        buffer.writeStaticString(key)
        buffer.writeStaticString("\":")
    }

    /// A JSON string literal (RFC 8259 section 7): quote, backslash and control characters
    /// escaped, everything else (valid UTF-8 already) copied.
    static func writeString(_ s: String, into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(ascii: "\""))
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""): buffer.writeStaticString("\\\"")
            case UInt8(ascii: "\\"): buffer.writeStaticString("\\\\")
            case 0x0A: buffer.writeStaticString("\\n")
            case 0x0D: buffer.writeStaticString("\\r")
            case 0x09: buffer.writeStaticString("\\t")
            case 0..<0x20:
                buffer.writeStaticString("\\u00")
                buffer.writeInteger(hex[Int(b >> 4)])
                buffer.writeInteger(hex[Int(b & 0xF)])
            default: buffer.writeInteger(b)
            }
        }
        buffer.writeInteger(UInt8(ascii: "\""))
    }
}
