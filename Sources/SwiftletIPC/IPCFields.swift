import NIOCore

/// The field types of SPEC 2.1 over `ByteBuffer`. Readers throw `malformed` when a field runs
/// past the end of the body.
public struct IPCReader {
    public var buffer: ByteBuffer
    public init(_ b: ByteBuffer) { self.buffer = b }

    public mutating func u8() throws -> UInt8 {
        guard let v = buffer.readInteger(as: UInt8.self) else { throw IPCError.malformed("truncated u8") }
        return v
    }
    public mutating func u16() throws -> UInt16 {
        guard let v = buffer.readInteger(as: UInt16.self) else { throw IPCError.malformed("truncated u16") }
        return v
    }
    public mutating func u32() throws -> UInt32 {
        guard let v = buffer.readInteger(as: UInt32.self) else { throw IPCError.malformed("truncated u32") }
        return v
    }
    public mutating func u64() throws -> UInt64 {
        guard let v = buffer.readInteger(as: UInt64.self) else { throw IPCError.malformed("truncated u64") }
        return v
    }
    public mutating func bool() throws -> Bool {
        switch try u8() {
        case 0: return false
        case 1: return true
        case let v: throw IPCError.malformed("bool value \(v)")
        }
    }
    public mutating func str() throws -> String {
        let n = Int(try u16())
        guard let bytes = buffer.readBytes(length: n) else { throw IPCError.malformed("truncated str") }
        guard let s = String(validating: bytes, as: UTF8.self) else { throw IPCError.malformed("str is not UTF-8") }
        return s
    }
    public mutating func bytes() throws -> ByteBuffer {
        let n = Int(try u32())
        guard let slice = buffer.readSlice(length: n) else { throw IPCError.malformed("truncated bytes") }
        return slice
    }
    public mutating func list<T>(_ item: (inout IPCReader) throws -> T) throws -> [T] {
        let n = Int(try u16())
        var out: [T] = []
        out.reserveCapacity(min(n, 1024))
        for _ in 0..<n { out.append(try item(&self)) }
        return out
    }
    public mutating func map() throws -> [(String, ByteBuffer)] {
        try list { r in (try r.str(), try r.bytes()) }
    }
    public mutating func opt<T>(_ item: (inout IPCReader) throws -> T) throws -> T? {
        switch try u8() {
        case 0: return nil
        case 1: return try item(&self)
        case let v: throw IPCError.malformed("opt tag \(v)")
        }
    }
    /// The body must be consumed exactly.
    public func end() throws {
        if buffer.readableBytes != 0 { throw IPCError.malformed("\(buffer.readableBytes) bytes left over") }
    }
}

public struct IPCWriter {
    public var buffer = ByteBuffer()
    public init() {}

    public mutating func u8(_ v: UInt8) { buffer.writeInteger(v) }
    public mutating func u16(_ v: UInt16) { buffer.writeInteger(v) }
    public mutating func u32(_ v: UInt32) { buffer.writeInteger(v) }
    public mutating func u64(_ v: UInt64) { buffer.writeInteger(v) }
    public mutating func bool(_ v: Bool) { buffer.writeInteger(UInt8(v ? 1 : 0)) }
    /// Senders must not exceed 65,535 bytes (SPEC 2.1); as a last defence a longer string is
    /// cut at a character boundary, never inside one.
    public mutating func str(_ s: String) {
        var n = min(s.utf8.count, Int(UInt16.max))
        if n < s.utf8.count {
            let bytes = Array(s.utf8)
            while n > 0 && bytes[n] & 0xC0 == 0x80 { n -= 1 }
        }
        buffer.writeInteger(UInt16(n))
        buffer.writeBytes(s.utf8.prefix(n))
    }
    public mutating func bytes(_ b: ByteBuffer) {
        buffer.writeInteger(UInt32(b.readableBytes))
        var c = b
        buffer.writeBuffer(&c)
    }
    public mutating func bytes(_ s: String) {
        buffer.writeInteger(UInt32(s.utf8.count))
        buffer.writeString(s)
    }
    public mutating func list<T>(_ items: [T], _ item: (inout IPCWriter, T) -> Void) {
        buffer.writeInteger(UInt16(min(items.count, Int(UInt16.max))))
        for x in items.prefix(Int(UInt16.max)) { item(&self, x) }
    }
    public mutating func map(_ m: [(String, ByteBuffer)]) {
        list(m) { w, kv in w.str(kv.0); w.bytes(kv.1) }
    }
    public mutating func opt<T>(_ v: T?, _ item: (inout IPCWriter, T) -> Void) {
        if let v { u8(1); item(&self, v) } else { u8(0) }
    }
}
