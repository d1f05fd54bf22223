import MQTTCodec
import NIOCore
import XCTest

// Shared helpers for the MQTTCodec tests.

/// Parses "30 FF 0a" (spaces optional) into bytes.
func hex(_ s: String) -> [UInt8] {
    let digits = s.filter { !$0.isWhitespace }
    precondition(digits.count % 2 == 0, "odd number of hex digits in \(s)")
    var out: [UInt8] = []
    var i = digits.startIndex
    while i != digits.endIndex {
        let j = digits.index(i, offsetBy: 2)
        out.append(UInt8(digits[i..<j], radix: 16)!)
        i = j
    }
    return out
}

/// Renders bytes as "30 FF 0A" for failure messages.
func hexString<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
    bytes.map { $0 < 16 ? "0" + String($0, radix: 16, uppercase: true) : String($0, radix: 16, uppercase: true) }
        .joined(separator: " ")
}

func hexString(_ buffer: ByteBuffer) -> String { hexString(buffer.readableBytesView) }

func buffer(_ bytes: [UInt8]) -> ByteBuffer { ByteBuffer(bytes: bytes) }

func buffer(_ s: String) -> ByteBuffer { ByteBuffer(string: s) }

/// A UTF-8 string field: two byte length then the bytes.
func str(_ s: String) -> [UInt8] { lenPrefixed(Array(s.utf8)) }

/// Two byte length then the given raw bytes (used to build ill-formed strings).
func lenPrefixed(_ raw: [UInt8]) -> [UInt8] {
    [UInt8(raw.count >> 8), UInt8(raw.count & 0xFF)] + raw
}

/// Variable byte integer encoding.
func varInt(_ value: Int) -> [UInt8] {
    var v = value
    var out: [UInt8] = []
    repeat {
        var b = UInt8(v & 0x7F)
        v >>= 7
        if v > 0 { b |= 0x80 }
        out.append(b)
    } while v > 0
    return out
}

/// A whole packet: first byte, remaining length, body.
func packet(_ first: UInt8, _ body: [UInt8]) -> [UInt8] {
    [first] + varInt(body.count) + body
}

/// A property block: length prefix then the raw property bytes.
func props(_ raw: [UInt8]) -> [UInt8] { varInt(raw.count) + raw }

/// Decodes every packet in `bytes`, requiring the buffer to be consumed completely.
func decodeAll(
    _ bytes: [UInt8], version: ProtocolVersion?, maxPacketSize: Int = 268_435_460
) throws -> [Packet] {
    var decoder = MQTTDecoder(version: version, maxPacketSize: maxPacketSize)
    var buf = ByteBuffer(bytes: bytes)
    var out: [Packet] = []
    while let p = try decoder.decode(buffer: &buf) { out.append(p) }
    XCTAssertEqual(buf.readableBytes, 0, "undecoded bytes left: \(hexString(buf))")
    return out
}

/// Decodes exactly one packet from `bytes`.
func decodeOne(_ bytes: [UInt8], version: ProtocolVersion?, maxPacketSize: Int = 268_435_460) throws -> Packet? {
    let all = try decodeAll(bytes, version: version, maxPacketSize: maxPacketSize)
    XCTAssertLessThanOrEqual(all.count, 1)
    return all.first
}

/// Encodes `packet`, checks the advertised length, decodes it back and checks equality.
/// Returns the encoded bytes for further assertions.
@discardableResult
func assertRoundTrip(
    _ packet: Packet, version: ProtocolVersion, file: StaticString = #filePath, line: UInt = #line
) -> [UInt8] {
    let encoded = packet.encoded(version: version)
    XCTAssertEqual(encoded.readableBytes, packet.encodedLength(version: version),
                   "encodedLength disagrees with the bytes written", file: file, line: line)
    XCTAssertEqual(encoded.readableBytes, 1 + varInt(packet.bodyLength(version: version)).count
                   + packet.bodyLength(version: version), file: file, line: line)

    // encode(into:) appends: must produce the same bytes after existing content.
    var appended = ByteBuffer(bytes: [0xAA, 0xBB])
    packet.encode(into: &appended, version: version)
    XCTAssertEqual(Array(appended.readableBytesView.dropFirst(2)), Array(encoded.readableBytesView),
                   file: file, line: line)

    var decoder = MQTTDecoder(version: version)
    var buf = encoded
    do {
        let decoded = try decoder.decode(buffer: &buf)
        XCTAssertEqual(decoded, packet, "round trip in \(version) of \(hexString(encoded))", file: file, line: line)
        XCTAssertEqual(buf.readableBytes, 0, "bytes left after decode", file: file, line: line)
    } catch {
        XCTFail("decode threw \(error) for \(hexString(encoded))", file: file, line: line)
    }
    return Array(encoded.readableBytesView)
}

/// The case of an `MQTTCodecError`, without its payload.
enum ErrorKind: Equatable {
    case malformed, protocolError, packetTooLarge, unsupportedProtocolVersion, unknownProtocolName
    case topicNameInvalid, topicAliasInvalid

    init(_ e: MQTTCodecError) {
        switch e {
        case .malformed: self = .malformed
        case .protocolError: self = .protocolError
        case .packetTooLarge: self = .packetTooLarge
        case .unsupportedProtocolVersion: self = .unsupportedProtocolVersion
        case .unknownProtocolName: self = .unknownProtocolName
        case .topicNameInvalid: self = .topicNameInvalid
        case .topicAliasInvalid: self = .topicAliasInvalid
        }
    }

    var reasonCode: UInt8 {
        switch self {
        case .malformed: return 0x81
        case .protocolError: return 0x82
        case .packetTooLarge: return 0x95
        case .unsupportedProtocolVersion, .unknownProtocolName: return 0x84
        case .topicNameInvalid: return 0x90
        case .topicAliasInvalid: return 0x94
        }
    }
}

/// Feeds `bytes` to a fresh decoder and asserts it throws an error of `kind` (and the
/// matching reason code). Returns the error for further checks.
@discardableResult
func assertDecodeError(
    _ bytes: [UInt8], version: ProtocolVersion?, maxPacketSize: Int = 268_435_460, _ kind: ErrorKind,
    file: StaticString = #filePath, line: UInt = #line
) -> MQTTCodecError? {
    var decoder = MQTTDecoder(version: version, maxPacketSize: maxPacketSize)
    var buf = ByteBuffer(bytes: bytes)
    do {
        var decoded: [Packet] = []
        while let p = try decoder.decode(buffer: &buf) { decoded.append(p) }
        XCTFail("expected \(kind) for \(hexString(bytes)), decoded \(decoded) with \(buf.readableBytes) bytes left",
                file: file, line: line)
        return nil
    } catch let e as MQTTCodecError {
        XCTAssertEqual(ErrorKind(e), kind, "\(e) for \(hexString(bytes))", file: file, line: line)
        XCTAssertEqual(e.reasonCode.rawValue, kind.reasonCode, "reason code of \(e)", file: file, line: line)
        return e
    } catch {
        XCTFail("unexpected error type \(error)", file: file, line: line)
        return nil
    }
}

/// Deterministic RNG (SplitMix64) so chunked-feed tests are reproducible.
struct SeededRNG: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
