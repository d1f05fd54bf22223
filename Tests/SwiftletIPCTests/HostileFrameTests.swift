import NIOCore
import SwiftletIPC
import XCTest

// Protocol/golden/hostile: every vector is rejected with the matching IPCError, by the frame
// decoder (framing, kind) or by IPCMessage.decode (body).

final class HostileFrameTests: XCTestCase {
    private enum Outcome {
        case frame(IPCError)      // IPCFrameDecoder.decode throws this
        case atEOF                // decode waits for more; decodeLast(seenEOF: true) throws malformed
        case body                 // the frame is well formed; IPCMessage.decode throws malformed
    }

    private let expected: [(file: String, outcome: Outcome)] = [
        ("length_too_large.hex", .frame(.frameTooLarge(65_537, max: 65_536))),
        ("length_too_small.hex", .frame(.frameTooSmall(4))),
        ("truncated.hex", .atEOF),
        ("unknown_kind.hex", .frame(.unknownKind(0x09))),
        ("str_past_end.hex", .body),
        ("bool_value_2.hex", .body),
        ("ping_leftover.hex", .body),
        ("gw_data_session_0.hex", .body),
        ("gw_data_bytes_past_end.hex", .body),
        ("authn_reply_subs_qos_3.hex", .body),
    ]

    func testEveryHostileFileHasAnExpectation() throws {
        XCTAssertEqual(try hexFiles(in: "hostile"), expected.map(\.file).sorted())
    }

    func testHostileVectorsAreRejected() throws {
        for (file, outcome) in expected {
            let bytes = try goldenBytes("hostile/" + file)
            var buffer = ByteBuffer(bytes: bytes)
            var decoder = IPCFrameDecoder(maxFrame: 65_536)
            switch outcome {
            case .frame(let error):
                XCTAssertThrowsError(try decoder.decode(buffer: &buffer), file) {
                    XCTAssertEqual($0 as? IPCError, error, file)
                }
            case .atEOF:
                XCTAssertNil(try decoder.decode(buffer: &buffer), "\(file): a partial frame is not an error yet")
                XCTAssertThrowsError(try decoder.decodeLast(buffer: &buffer, seenEOF: true), file) {
                    guard case .malformed = $0 as? IPCError else { return XCTFail("\(file): \($0)") }
                }
            case .body:
                let frame = try XCTUnwrap(try decoder.decode(buffer: &buffer), "\(file): frame expected")
                XCTAssertEqual(buffer.readableBytes, 0, file)
                XCTAssertThrowsError(try IPCMessage.decode(frame), file) {
                    guard case .malformed = $0 as? IPCError else { return XCTFail("\(file): \($0)") }
                }
            }
        }
    }

    /// SPEC 2: the length alone decides; the body is neither read nor awaited.
    func testOversizedLengthRejectedFromTheFourLengthBytes() throws {
        var decoder = IPCFrameDecoder(maxFrame: 65_536)
        var buffer = ByteBuffer(bytes: Array(try goldenBytes("hostile/length_too_large.hex").prefix(4)))
        XCTAssertThrowsError(try decoder.decode(buffer: &buffer)) {
            XCTAssertEqual($0 as? IPCError, .frameTooLarge(65_537, max: 65_536))
        }
    }

    func testUndersizedLengthRejectedFromTheFourLengthBytes() throws {
        var decoder = IPCFrameDecoder(maxFrame: 65_536)
        var buffer = ByteBuffer(bytes: [0, 0, 0, 4])
        XCTAssertThrowsError(try decoder.decode(buffer: &buffer)) {
            XCTAssertEqual($0 as? IPCError, .frameTooSmall(4))
        }
    }

    func testLengthAtTheMaximumIsAccepted() throws {
        // GOODBYE whose reason fills a frame of length exactly 65,536.
        let reason = String(repeating: "x", count: 65_536 - 5 - 2)
        let frame = IPCMessage.goodbye(reason: reason).frame(requestId: 0)
        var buffer = frame.encoded
        XCTAssertEqual(buffer.getInteger(at: 0, as: UInt32.self), 65_536)
        var decoder = IPCFrameDecoder(maxFrame: 65_536)
        let decoded = try XCTUnwrap(try decoder.decode(buffer: &buffer))
        XCTAssertEqual(try IPCMessage.decode(decoded), .goodbye(reason: reason))
    }

    /// Every reserved kind (SPEC 3) is refused by the frame decoder.
    func testEveryReservedKindIsUnknown() throws {
        let known = Set(IPCKind.allCases.map(\.rawValue))
        for kind in UInt8.min...UInt8.max where !known.contains(kind) {
            var buffer = ByteBuffer(bytes: [0, 0, 0, 5, kind, 0, 0, 0, 1])
            var decoder = IPCFrameDecoder()
            XCTAssertThrowsError(try decoder.decode(buffer: &buffer)) {
                XCTAssertEqual($0 as? IPCError, .unknownKind(kind))
            }
        }
    }

    /// Every strict prefix of every golden body, and every body with one byte added, is malformed.
    func testTruncatedAndPaddedBodiesAreMalformed() throws {
        for g in goldenMessages {
            let body = Array(g.message.body().readableBytesView)
            for n in 0..<body.count {
                let frame = IPCFrame(kind: g.message.kind, requestId: g.requestId, body: ByteBuffer(bytes: body.prefix(n)))
                XCTAssertThrowsError(try IPCMessage.decode(frame), "\(g.file) body cut at \(n)") {
                    guard case .malformed = $0 as? IPCError else { return XCTFail("\(g.file): \($0)") }
                }
            }
            let padded = IPCFrame(kind: g.message.kind, requestId: g.requestId, body: ByteBuffer(bytes: body + [0]))
            XCTAssertThrowsError(try IPCMessage.decode(padded), "\(g.file) with a byte left over")
        }
    }

    func testOptFlag2IsMalformed() throws {
        var bytes = try goldenBytes("authn_request_anonymous.hex")
        bytes[bytes.count - 1] = 2  // password opt flag
        var buffer = ByteBuffer(bytes: bytes)
        var decoder = IPCFrameDecoder()
        let frame = try XCTUnwrap(try decoder.decode(buffer: &buffer))
        XCTAssertThrowsError(try IPCMessage.decode(frame)) {
            guard case .malformed = $0 as? IPCError else { return XCTFail("\($0)") }
        }
    }

    func testInvalidUTF8IsMalformed() throws {
        let frame = IPCFrame(kind: .goodbye, requestId: 0, body: ByteBuffer(bytes: [0x00, 0x02, 0xC3, 0x28]))
        XCTAssertThrowsError(try IPCMessage.decode(frame)) {
            guard case .malformed = $0 as? IPCError else { return XCTFail("\($0)") }
        }
    }

    /// SPEC 7: session 0 is malformed in every gateway frame; GW_OPEN is a request and GW_DATA,
    /// GW_CLOSE are notifications, so the wrong kind of request id is malformed too.
    func testGatewayFramesWithSessionZeroOrTheWrongIdAreMalformed() throws {
        let bad: [IPCFrame] = [
            IPCFrame(kind: .gwOpen, requestId: 1, body: IPCMessage.gwOpen(session: 1, protocol: "p", peerAddress: "a", peerPort: 1,
                                                                        listener: "l").body().settingSession(0)),
            IPCFrame(kind: .gwOpened, requestId: 1, body: ByteBuffer(bytes: [0, 0, 0, 0])),
            IPCFrame(kind: .gwClose, requestId: 0, body: IPCMessage.gwClose(session: 9, reason: "x").body().settingSession(0)),
            IPCMessage.gwOpen(session: 1, protocol: "p", peerAddress: "a", peerPort: 1, listener: "l").frame(requestId: 0),
            IPCMessage.gwData(session: 1, data: ByteBuffer()).frame(requestId: 3),
            IPCMessage.gwClose(session: 1, reason: "").frame(requestId: 3),
        ]
        for f in bad {
            XCTAssertThrowsError(try IPCMessage.decode(f), "\(f.kind) id \(f.requestId)") {
                guard case .malformed = $0 as? IPCError else { return XCTFail("\($0)") }
            }
        }
    }

    func testGatewayKindsAreVersion2AuthnReplySubsVersion3AndTheOthersVersion1() {
        for k in IPCKind.allCases {
            XCTAssertEqual(k.version, k == .authnReplySubs ? 3 : k.rawValue >= 0x50 ? 2 : 1, "\(k)")
        }
        XCTAssertTrue(IPCKind.authnReplySubs.isReply)
        XCTAssertTrue(IPCKind.gwOpened.isReply)
        XCTAssertFalse(IPCKind.gwData.isReply)
    }

    /// The stream cannot be resynchronised after a framing error: the decoder keeps failing.
    func testFrameAfterAnOversizedLengthIsNotDecoded() throws {
        var stream = try goldenBytes("hostile/length_too_large.hex")
        stream += try goldenBytes("ping.hex")
        let processor = NIOSingleStepByteToMessageProcessor(IPCFrameDecoder(maxFrame: 65_536))
        var frames: [IPCFrame] = []
        XCTAssertThrowsError(try processor.process(buffer: ByteBuffer(bytes: stream)) { frames.append($0) }) {
            XCTAssertEqual($0 as? IPCError, .frameTooLarge(65_537, max: 65_536))
        }
        XCTAssertEqual(frames, [])
    }
}

private extension ByteBuffer {
    /// The same body with its leading `u32 session` replaced.
    func settingSession(_ id: UInt32) -> ByteBuffer {
        var b = self
        b.setInteger(id, at: b.readerIndex)
        return b
    }
}
