import NIOCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Primitive MQTT data types over `ByteBuffer`. Readers throw `malformed` when the data
/// runs out: they are only used on a body whose full length is already buffered.
extension ByteBuffer {
    @inlinable
    mutating func mqttReadByte() throws -> UInt8 {
        guard let b = readInteger(as: UInt8.self) else { throw MQTTCodecError.malformed("truncated byte") }
        return b
    }

    @inlinable
    mutating func mqttReadUInt16() throws -> UInt16 {
        guard let v = readInteger(as: UInt16.self) else { throw MQTTCodecError.malformed("truncated two byte integer") }
        return v
    }

    @inlinable
    mutating func mqttReadUInt32() throws -> UInt32 {
        guard let v = readInteger(as: UInt32.self) else { throw MQTTCodecError.malformed("truncated four byte integer") }
        return v
    }

    /// Variable byte integer inside a body (at most 4 bytes).
    mutating func mqttReadVarInt() throws -> Int {
        var value = 0
        var multiplier = 1
        for i in 0..<4 {
            guard let b = readInteger(as: UInt8.self) else { throw MQTTCodecError.malformed("truncated variable byte integer") }
            value += Int(b & 0x7F) * multiplier
            if b & 0x80 == 0 {
                // A value encoded in more bytes than needed is still accepted, as every broker does.
                return value
            }
            multiplier *= 128
            if i == 3 { break }
        }
        throw MQTTCodecError.malformed("variable byte integer longer than 4 bytes")
    }

    /// Two-byte length then that many bytes.
    mutating func mqttReadBinary() throws -> ByteBuffer {
        let len = Int(try mqttReadUInt16())
        guard let slice = readSlice(length: len) else { throw MQTTCodecError.malformed("truncated binary data") }
        return slice
    }

    /// A UTF-8 encoded string: well formed, no U+0000 (MQTT-1.5.4-1, -2). With
    /// `rejectControl` (topics, client ids, user names under `strict_utf8`) the control
    /// characters the spec says SHOULD NOT appear (MQTT-1.5.4-2 note) are refused too.
    mutating func mqttReadString(rejectControl: Bool = false) throws -> String {
        let len = Int(try mqttReadUInt16())
        guard readableBytes >= len else { throw MQTTCodecError.malformed("truncated string") }
        let s = try withUnsafeReadableBytes { raw -> String in
            let bytes = UnsafeRawBufferPointer(rebasing: raw[0..<len])
            return try MQTTString.validate(bytes, rejectControl: rejectControl)
        }
        moveReaderIndex(forwardBy: len)
        return s
    }

    /// Reads a string field when its bytes are `known`'s (already validated), and returns
    /// true; otherwise reads nothing and returns false. An empty `known` never matches.
    mutating func mqttReadStringIfEqual(to known: inout String) -> Bool {
        guard !known.isEmpty, let len = getInteger(at: readerIndex, as: UInt16.self),
              Int(len) == known.utf8.count, readableBytes >= 2 + Int(len) else { return false }
        let same = known.withUTF8 { k in
            withUnsafeReadableBytes { raw in
                memcmp(raw.baseAddress! + 2, k.baseAddress!, Int(len)) == 0
            }
        }
        if same { moveReaderIndex(forwardBy: 2 + Int(len)) }
        return same
    }

    @inlinable
    mutating func mqttWriteVarInt(_ value: Int) {
        var v = value
        repeat {
            var b = UInt8(v & 0x7F)
            v >>= 7
            if v > 0 { b |= 0x80 }
            writeInteger(b)
        } while v > 0
    }

    @inlinable
    mutating func mqttWriteString(_ s: String) {
        var s = s
        s.withUTF8 { utf8 in
            writeInteger(UInt16(truncatingIfNeeded: utf8.count))
            writeBytes(utf8)
        }
    }

    @inlinable
    mutating func mqttWriteBinary(_ b: ByteBuffer) {
        writeInteger(UInt16(truncatingIfNeeded: b.readableBytes))
        var copy = b
        writeBuffer(&copy)
    }
}

public enum MQTTString {
    /// Bytes needed for a variable byte integer.
    @inlinable
    public static func varIntLength(_ v: Int) -> Int {
        v < 128 ? 1 : v < 16_384 ? 2 : v < 2_097_152 ? 3 : 4
    }

    /// Length on the wire of a UTF-8 string field.
    @inlinable
    public static func fieldLength(_ s: String) -> Int { 2 + s.utf8.count }

    /// Validates MQTT UTF-8: well formed and free of U+0000; with `rejectControl` also free
    /// of U+0001-U+001F and U+007F-U+009F. One pass over the bytes: U+0080-U+009F are the
    /// two-byte sequences C2 80 to C2 9F, and C2 is never a continuation byte.
    public static func validate(_ bytes: UnsafeRawBufferPointer, rejectControl: Bool = false) throws -> String {
        var ascii = true
        var prev: UInt8 = 0
        for b in bytes {
            if b == 0 { throw MQTTCodecError.malformed("string contains U+0000") }
            if rejectControl && (b < 0x20 || b == 0x7F || (prev == 0xC2 && b >= 0x80 && b < 0xA0)) {
                throw MQTTCodecError.malformed("control character in a topic, client id or user name")
            }
            if b >= 0x80 { ascii = false }
            prev = b
        }
        if ascii { return String(decoding: bytes, as: UTF8.self) }
        guard let s = String(validating: bytes, as: UTF8.self) else {
            throw MQTTCodecError.malformed("string is not well-formed UTF-8")
        }
        return s
    }
}
