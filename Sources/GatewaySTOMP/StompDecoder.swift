import NIOCore

/// emqttd_stomp's frame limits (`[stomp.frame]`): checked as the bytes arrive, before a
/// frame is buffered whole.
public struct StompLimits: Sendable, Equatable {
    /// Most header lines in one frame (the command line not counted).
    public var maxHeaders: Int
    /// Longest command or header line, in bytes.
    public var maxHeaderLength: Int
    /// Longest body, in bytes.
    public var maxBodyLength: Int

    public init(maxHeaders: Int = 10, maxHeaderLength: Int = 1024, maxBodyLength: Int = 8192) {
        self.maxHeaders = maxHeaders
        self.maxHeaderLength = maxHeaderLength
        self.maxBodyLength = maxBodyLength
    }
}

public enum StompDecodeError: Error, Equatable, CustomStringConvertible, Sendable {
    case tooManyHeaders(limit: Int)
    case headerTooLong(limit: Int)
    case bodyTooLong(limit: Int)
    case malformed(String)

    public var description: String {
        switch self {
        case .tooManyHeaders(let l): return "too many headers (max_headers = \(l))"
        case .headerTooLong(let l): return "header line too long (max_header_length = \(l))"
        case .bodyTooLong(let l): return "body too long (max_body_length = \(l))"
        case .malformed(let m): return "malformed frame: \(m)"
        }
    }
}

public enum StompInbound: Sendable, Equatable {
    case frame(StompFrame)
    /// An end of line between frames (STOMP 1.1+ heart-beat).
    case heartbeat
}

/// Splits a byte stream into STOMP frames. Pure: returns nil when more bytes are needed and
/// leaves the buffer untouched then; throws when the stream breaks a limit or the grammar.
public struct StompDecoder: Sendable {
    public var limits: StompLimits
    /// Set once the version is negotiated; header values are unescaped by its rules (none
    /// before, and never in CONNECT/STOMP frames).
    public var version: StompVersion = .v1_0

    public init(limits: StompLimits = StompLimits()) {
        self.limits = limits
    }

    public mutating func decode(buffer: inout ByteBuffer) throws -> StompInbound? {
        let view = buffer.readableBytesView
        guard let first = view.first else { return nil }
        // End of lines between frames are heart-beats.
        if first == 10 {
            buffer.moveReaderIndex(forwardBy: 1)
            return .heartbeat
        }
        if first == 13 {
            guard view.count >= 2 else { return nil }
            guard view[view.startIndex + 1] == 10 else { throw StompDecodeError.malformed("CR without LF") }
            buffer.moveReaderIndex(forwardBy: 2)
            return .heartbeat
        }
        var lines: [(Int, Int)] = []  // [start, end) of the command and header lines
        var pos = view.startIndex
        while true {
            let limit = min(view.endIndex, pos + limits.maxHeaderLength + 2)
            guard let nl = view[pos..<limit].firstIndex(of: 10) else {
                if limit - pos >= limits.maxHeaderLength + 2 { throw StompDecodeError.headerTooLong(limit: limits.maxHeaderLength) }
                return nil
            }
            var end = nl
            if end > pos && view[end - 1] == 13 { end -= 1 }
            if end - pos > limits.maxHeaderLength { throw StompDecodeError.headerTooLong(limit: limits.maxHeaderLength) }
            let start = pos
            pos = nl + 1
            if end == start && !lines.isEmpty { break }  // the empty line ends the headers
            // Each line is judged as soon as it is whole, so garbage is refused at once rather
            // than waited on until a limit is reached (found by a flaky random-bytes test).
            if lines.isEmpty {
                guard end > start, view[start..<end].allSatisfy({ $0 >= 0x41 && $0 <= 0x5A }) else {
                    throw StompDecodeError.malformed("bad command line")
                }
            } else if !view[start..<end].contains(UInt8(ascii: ":")) {
                throw StompDecodeError.malformed("header line without a colon")
            }
            lines.append((start, end))
            if lines.count > limits.maxHeaders + 1 { throw StompDecodeError.tooManyHeaders(limit: limits.maxHeaders) }
        }
        let command = String(decoding: view[lines[0].0..<lines[0].1], as: UTF8.self)
        let escape = StompFrame.escapes(command, version: version)
        var headers: [(String, String)] = []
        headers.reserveCapacity(lines.count - 1)
        for (start, end) in lines.dropFirst() {
            let line = view[start..<end]
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else {
                throw StompDecodeError.malformed("header line without a colon")
            }
            let key = try text(line[line.startIndex..<colon], escape: escape)
            let value = try text(line[(colon + 1)..<line.endIndex], escape: escape)
            headers.append((key, value))
        }
        let bodyStart = pos
        let bodyEnd: Int
        if let lengthText = headers.first(where: { $0.0 == "content-length" })?.1 {
            guard !lengthText.isEmpty, lengthText.utf8.count <= 10, lengthText.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }),
                  let length = Int(lengthText) else {
                throw StompDecodeError.malformed("content-length is not a number")
            }
            if length > limits.maxBodyLength { throw StompDecodeError.bodyTooLong(limit: limits.maxBodyLength) }
            guard view.endIndex - bodyStart > length else { return nil }
            bodyEnd = bodyStart + length
            guard view[bodyEnd] == 0 else { throw StompDecodeError.malformed("no NUL after content-length bytes") }
        } else {
            let limit = min(view.endIndex, bodyStart + limits.maxBodyLength + 1)
            guard let nul = view[bodyStart..<limit].firstIndex(of: 0) else {
                if limit - bodyStart > limits.maxBodyLength { throw StompDecodeError.bodyTooLong(limit: limits.maxBodyLength) }
                return nil
            }
            bodyEnd = nul
        }
        let offset = buffer.readerIndex - view.startIndex
        let body = buffer.getSlice(at: bodyStart + offset, length: bodyEnd - bodyStart)!
        buffer.moveReaderIndex(to: bodyEnd + 1 + offset)
        return .frame(StompFrame(command, headers, body: body))
    }

    /// UTF-8 text of a header key or value, unescaped when `escape` (STOMP 1.1/1.2: an
    /// undefined escape is a fatal error).
    private func text(_ bytes: ByteBufferView, escape: Bool) throws -> String {
        guard escape, bytes.contains(UInt8(ascii: "\\")) else { return String(decoding: bytes, as: UTF8.self) }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = bytes.startIndex
        while i < bytes.endIndex {
            let b = bytes[i]
            i += 1
            guard b == UInt8(ascii: "\\") else {
                out.append(b)
                continue
            }
            guard i < bytes.endIndex else { throw StompDecodeError.malformed("escape at the end of a header") }
            switch bytes[i] {
            case UInt8(ascii: "n"): out.append(10)
            case UInt8(ascii: "c"): out.append(UInt8(ascii: ":"))
            case UInt8(ascii: "\\"): out.append(UInt8(ascii: "\\"))
            case UInt8(ascii: "r") where version == .v1_2: out.append(13)
            default: throw StompDecodeError.malformed("undefined escape sequence in a header")
            }
            i += 1
        }
        return String(decoding: out, as: UTF8.self)
    }
}
