import NIOCore
import SwiftletIPC
import XCTest
@testable import SidecarLinkKit

/// The broker's side of the sidecar protocol through `SidecarLink` alone: bytes and a manual
/// clock in, actions out (Protocol/SPEC.md sections 2-5). Waiters are numbers.
final class SidecarLinkTests: XCTestCase {
    typealias Link = SidecarLink<Int>

    private let t0: UInt64 = 1_000_000_000_000
    private let second: UInt64 = 1_000_000_000
    private let settings = Link.Settings(handshakeTimeout: 5_000_000_000, healthInterval: 5_000_000_000,
                                         healthTimeout: 10_000_000_000, brokerVersion: "test", node: "n1")

    // MARK: Helpers

    private func bytes(_ m: IPCMessage, id: UInt32) -> ByteBuffer {
        var b = ByteBuffer()
        m.frame(requestId: id).encode(into: &b)
        return b
    }

    /// A frame with any kind byte and body, for kinds the codec refuses.
    private func raw(kind: UInt8, id: UInt32, body: [UInt8] = []) -> ByteBuffer {
        var b = ByteBuffer()
        b.writeInteger(UInt32(5 + body.count))
        b.writeInteger(kind)
        b.writeInteger(id)
        b.writeBytes(body)
        return b
    }

    private func hello(min: UInt16 = 1, max: UInt16 = IPCVersion.current, name: String = "sc",
                       maxFrame: UInt32 = 1 << 20) -> ByteBuffer {
        bytes(.hello(minVersion: min, maxVersion: max, name: name, sidecarVersion: "1.0", maxFrame: maxFrame), id: 1)
    }

    private func client() -> IPCClient {
        IPCClient(clientId: "c", username: "u", peerAddress: "127.0.0.1", peerPort: 1, protocolLevel: 5, listener: "tcp",
                  certCommonName: nil, certSubject: nil)
    }

    private func authz(_ topic: String) -> IPCMessage {
        .authzRequest(client: client(), access: .publish, topic: topic, qos: 0, retain: false)
    }

    private func allow(_ reason: String) -> IPCMessage { .authzReply(decision: .allow, ttlMs: 0, reason: reason) }

    /// A link past HELLO and REGISTER at `t0`.
    private func registered(_ caps: [IPCCapability] = []) -> Link {
        var l = Link(settings: settings, now: t0)
        _ = l.receive(hello(), now: t0)
        _ = l.receive(bytes(.register(caps), id: 2), now: t0)
        l.readComplete()
        XCTAssertEqual(l.state, .registered)
        return l
    }

    /// Messages sent, with their ids, decoded.
    private func sent(_ actions: [Link.Action]) -> [(IPCMessage, UInt32)] {
        actions.compactMap {
            guard case .send(let f) = $0 else { return nil }
            return (try! IPCMessage.decode(f), f.requestId)
        }
    }

    private func completed(_ actions: [Link.Action]) -> [(Int, IPCMessage)] {
        actions.compactMap { if case .complete(let w, let m) = $0 { return (w, m) } else { return nil } }
    }

    private func failed(_ actions: [Link.Action]) -> [(Int, SidecarRequestError)] {
        actions.compactMap { if case .fail(let w, let e) = $0 { return (w, e) } else { return nil } }
    }

    private func ended(_ actions: [Link.Action]) -> (SidecarCloseReason, Bool)? {
        for a in actions { if case .ended(let r, let w) = a { return (r, w) } }
        return nil
    }

    private func violation(_ actions: [Link.Action]) -> SidecarCloseReason? {
        for a in actions { if case .violation(let r) = a { return r } }
        return nil
    }

    private func closesChannel(_ actions: [Link.Action]) -> Bool {
        actions.contains { if case .closeChannel = $0 { return true } else { return false } }
    }

    /// Sends a request and returns its id on the wire.
    private func request(_ l: inout Link, _ m: IPCMessage, waiter: Int, timeout: UInt64 = 5_000_000_000,
                         now: UInt64? = nil) -> UInt32 {
        let a = l.request(m, timeout: timeout, waiter: waiter, now: now ?? t0)
        let s = sent(a)
        XCTAssertEqual(s.count, 1)
        return s.first?.1 ?? 0
    }

    // MARK: Handshake and version negotiation

    func testHelloIsWelcomedWithTheHighestCommonVersionAndTheSmallerMaxFrame() {
        var l = Link(settings: settings, now: t0)
        let a = l.receive(hello(max: 9, maxFrame: 1 << 20), now: t0)
        let s = sent(a)
        XCTAssertEqual(s.count, 1)
        XCTAssertEqual(s[0].1, 1)
        XCTAssertEqual(s[0].0, .welcome(version: IPCVersion.current, brokerVersion: "test", node: "n1", maxFrame: 16 << 20))
        XCTAssertTrue(a.contains { if case .welcomed = $0 { return true } else { return false } })
        XCTAssertEqual(l.state, .welcomed)
        XCTAssertEqual(l.name, "sc")
        XCTAssertEqual(l.version, IPCVersion.current)
        XCTAssertEqual(l.maxFrame, 1 << 20)
    }

    func testAVersion1SidecarGetsVersion1AndTheHandshakeMaximumAtLeast() {
        var l = Link(settings: settings, now: t0)
        let a = l.receive(hello(min: 1, max: 1, maxFrame: 1000), now: t0)
        XCTAssertEqual(sent(a).first?.0, .welcome(version: 1, brokerVersion: "test", node: "n1", maxFrame: 16 << 20))
        XCTAssertEqual(l.version, 1)
        XCTAssertEqual(l.maxFrame, IPCVersion.handshakeMaxFrame)
    }

    func testNoCommonVersionIsAnsweredError8AndCloses() {
        var l = Link(settings: settings, now: t0)
        let a = l.receive(hello(min: IPCVersion.current + 1, max: IPCVersion.current + 2), now: t0)
        guard case .error(let code, _) = sent(a).first?.0 else { return XCTFail("no ERROR: \(a)") }
        XCTAssertEqual(code, IPCErrorCode.versionNotSupported.rawValue)
        XCTAssertEqual(violation(a)?.violation?.hasPrefix("no common protocol version"), true)
        XCTAssertTrue(closesChannel(a))
        XCTAssertEqual(ended(a)?.1, false)
        XCTAssertEqual(l.state, .closed)
    }

    func testAnInvalidNameIsRefusedAndCloses() {
        var l = Link(settings: settings, now: t0)
        let a = l.receive(hello(name: "no spaces"), now: t0)
        guard case .error(let code, _) = sent(a).first?.0 else { return XCTFail("no ERROR: \(a)") }
        XCTAssertEqual(code, IPCErrorCode.malformed.rawValue)
        XCTAssertEqual(l.state, .closed)
    }

    func testAFrameBeforeHelloIsAViolationWithoutAnswer() {
        var l = Link(settings: settings, now: t0)
        let a = l.receive(bytes(.ping, id: 7), now: t0)
        XCTAssertTrue(sent(a).isEmpty)
        XCTAssertEqual(violation(a)?.violation?.hasSuffix("before HELLO"), true)
        XCTAssertEqual(l.state, .closed)
    }

    func testHelloTwiceAndRegisterTwiceAreAnsweredError5AndTheConnectionStays() {
        var l = registered()
        let a = l.receive(hello(), now: t0) + l.receive(bytes(.register([]), id: 3), now: t0)
        XCTAssertEqual(sent(a).map(\.1), [1, 3])
        for (m, _) in sent(a) {
            guard case .error(let code, _) = m else { return XCTFail("\(m)") }
            XCTAssertEqual(code, IPCErrorCode.wrongState.rawValue)
        }
        XCTAssertEqual(l.state, .registered)
    }

    func testRegisterAcceptsKnownHooksAndAsksForTheHub() {
        var l = Link(settings: settings, now: t0)
        _ = l.receive(hello(), now: t0)
        let a = l.receive(bytes(.register([.authn(order: 1), .hook(name: "client.connected", sync: false, budgetMs: 0),
                                           .hook(name: "nonsense", sync: false, budgetMs: 0)]), id: 2), now: t0)
        XCTAssertEqual(sent(a).first?.0, .registered(hooks: ["client.connected"]))
        XCTAssertTrue(a.contains { if case .registered = $0 { return true } else { return false } })
        XCTAssertEqual(l.capabilities.count, 3)
    }

    func testAGatewayCapabilityNeedsVersion2() {
        var l = Link(settings: settings, now: t0)
        _ = l.receive(hello(max: 1), now: t0)
        let a = l.receive(bytes(.register([.gateway(protocol: "mqtt-sn")]), id: 2), now: t0)
        guard case .error(let code, _) = sent(a).first?.0 else { return XCTFail("\(a)") }
        XCTAssertEqual(code, IPCErrorCode.unsupported.rawValue)
        XCTAssertEqual(l.state, .welcomed)
    }

    func testNoHelloWithinTheHandshakeTimeoutCloses() {
        var l = Link(settings: settings, now: t0)
        XCTAssertEqual(l.nextDeadline(), t0 + 5 * second)
        XCTAssertTrue(l.tick(now: t0 + 5 * second - 1).isEmpty)
        let a = l.tick(now: t0 + 5 * second)
        XCTAssertEqual(violation(a), .helloTimeout)
        XCTAssertEqual(ended(a)?.0, .helloTimeout)
        XCTAssertEqual(l.state, .closed)
    }

    // MARK: Requests and replies

    func testRepliesInAnyOrderCompleteTheirOwnRequests() {
        var l = registered()
        let a = request(&l, authz("a"), waiter: 1)
        let b = request(&l, authz("b"), waiter: 2)
        let c = request(&l, authz("c"), waiter: 3)
        XCTAssertEqual(Set([a, b, c]).count, 3)
        XCTAssertEqual(l.outstanding, 3)
        let done = l.receive(bytes(allow("b"), id: b), now: t0) + l.receive(bytes(allow("c"), id: c), now: t0)
            + l.receive(bytes(allow("a"), id: a), now: t0)
        XCTAssertEqual(completed(done).map(\.0), [2, 3, 1])
        XCTAssertEqual(completed(done).map(\.1), [allow("b"), allow("c"), allow("a")])
        XCTAssertEqual(l.outstanding, 0)
    }

    func testAnErrorReplyCompletesItsRequest() {
        var l = registered()
        let id = request(&l, authz("a"), waiter: 1)
        let done = l.receive(bytes(.error(code: 7, message: "db down"), id: id), now: t0)
        XCTAssertEqual(completed(done).first?.1, .error(code: 7, message: "db down"))
    }

    func testARequestTimesOutAndItsLateReplyIsDiscarded() {
        var l = registered()
        let id = request(&l, authz("a"), waiter: 1, timeout: second)
        _ = request(&l, authz("b"), waiter: 2, timeout: 3 * second)
        XCTAssertEqual(l.nextDeadline(), t0 + second)
        XCTAssertTrue(l.tick(now: t0 + second - 1).isEmpty)
        let a = l.tick(now: t0 + second)
        XCTAssertEqual(failed(a).map(\.0), [1])
        XCTAssertEqual(failed(a).first?.1, .timedOut("sc"))
        XCTAssertEqual(l.nextDeadline(), t0 + 3 * second)
        let late = l.receive(bytes(allow("a"), id: id), now: t0 + 2 * second)
        XCTAssertTrue(late.isEmpty, "a late reply is discarded, not a violation: \(late)")
        XCTAssertEqual(l.state, .registered)
    }

    func testRequestsBeforeRegisterFailAsDownExceptPing() {
        var l = Link(settings: settings, now: t0)
        XCTAssertEqual(failed(l.request(.ping, timeout: second, waiter: 1, now: t0)).first?.1, .down(""))
        _ = l.receive(hello(), now: t0)
        XCTAssertEqual(failed(l.request(authz("a"), timeout: second, waiter: 2, now: t0)).first?.1, .down("sc"))
        XCTAssertEqual(sent(l.request(.ping, timeout: second, waiter: 3, now: t0)).first?.0, .ping)
    }

    func testARequestLargerThanTheFrameIsRefusedWithoutSending() {
        var l = Link(settings: settings, now: t0)
        _ = l.receive(hello(maxFrame: IPCVersion.handshakeMaxFrame), now: t0)
        _ = l.receive(bytes(.register([]), id: 2), now: t0)
        let a = l.request(authz(String(repeating: "t", count: 65_535)), timeout: second, waiter: 1, now: t0)
        XCTAssertTrue(sent(a).isEmpty)
        guard case .refused(let code, _)? = failed(a).first?.1 else { return XCTFail("\(a)") }
        XCTAssertEqual(code, IPCErrorCode.unsupported.rawValue)
    }

    func testTheSidecarsPingIsAnsweredWithItsId() {
        var l = registered()
        XCTAssertEqual(sent(l.receive(bytes(.ping, id: 42), now: t0)).first.map { "\($0.0) \($0.1)" }, "pong 42")
    }

    // MARK: Violations

    func testAReplyToAnIdNeverUsedIsAViolation() {
        var l = registered()
        _ = request(&l, authz("a"), waiter: 1)
        let a = l.receive(bytes(allow("x"), id: 99_999), now: t0)
        XCTAssertEqual(violation(a)?.violation, "reply authzReply to unknown request id 99999")
        XCTAssertEqual(failed(a).map(\.0), [1])
        XCTAssertEqual(ended(a)?.1, true)
    }

    func testAReplyWithId0IsAViolation() {
        var l = registered()
        XCTAssertNotNil(violation(l.receive(bytes(.pong, id: 0), now: t0)))
    }

    func testMoreThanTheAllowedRequestsInOneReadIsAFlood() {
        var l = registered()
        var burst = ByteBuffer()
        for i in 0..<1025 {
            var f = bytes(.ping, id: UInt32(10 + i))
            burst.writeBuffer(&f)
        }
        let a = l.receive(burst, now: t0)
        XCTAssertEqual(sent(a).filter { $0.0 == .pong }.count, 1024)
        XCTAssertEqual(violation(a)?.violation, "flood: more than 1024 requests outstanding")
        XCTAssertEqual(l.state, .closed)
    }

    func testTheFloodCountStartsAgainAfterEachRead() {
        var l = registered()
        for round in 0..<3 {
            var burst = ByteBuffer()
            for i in 0..<1000 {
                var f = bytes(.ping, id: UInt32(round * 1000 + i + 1))
                burst.writeBuffer(&f)
            }
            XCTAssertNil(violation(l.receive(burst, now: t0)))
            l.readComplete()
        }
        XCTAssertEqual(l.state, .registered)
    }

    func testAFrameOverTheNegotiatedMaximumIsAViolation() {
        var before = Link(settings: settings, now: t0)
        var big = ByteBuffer()
        big.writeInteger(UInt32(IPCVersion.handshakeMaxFrame + 1))
        let a = before.receive(big, now: t0)
        XCTAssertEqual(violation(a)?.violation, "\(IPCError.frameTooLarge(IPCVersion.handshakeMaxFrame + 1, max: IPCVersion.handshakeMaxFrame))")

        var l = Link(settings: settings, now: t0)
        _ = l.receive(hello(maxFrame: 100_000), now: t0)
        var ok = ByteBuffer()
        ok.writeInteger(UInt32(100_000))
        XCTAssertNil(violation(l.receive(ok, now: t0)), "at the maximum: waits for the body")
        var l2 = Link(settings: settings, now: t0)
        _ = l2.receive(hello(maxFrame: 100_000), now: t0)
        var over = ByteBuffer()
        over.writeInteger(UInt32(100_001))
        XCTAssertNotNil(violation(l2.receive(over, now: t0)))
    }

    func testAFrameBelowFiveBytesIsAViolation() {
        var l = Link(settings: settings, now: t0)
        var b = ByteBuffer()
        b.writeInteger(UInt32(4))
        XCTAssertNotNil(violation(l.receive(b, now: t0)))
    }

    func testAnUnknownKindWithAnIdIsAnsweredError2ThenCloses() {
        var l = registered()
        let a = l.receive(raw(kind: 0x7F, id: 5), now: t0)
        guard case (.error(let code, _), 5)? = sent(a).first else { return XCTFail("\(a)") }
        XCTAssertEqual(code, IPCErrorCode.unknownKind.rawValue)
        XCTAssertNotNil(violation(a))
        XCTAssertEqual(l.state, .closed)
    }

    func testAnUnknownKindBeforeHelloClosesWithoutAnswer() {
        var l = Link(settings: settings, now: t0)
        let a = l.receive(raw(kind: 0x7F, id: 5), now: t0)
        XCTAssertTrue(sent(a).isEmpty)
        XCTAssertNotNil(violation(a))
    }

    func testAKindOfALaterVersionIsUnknownInThisConnection() {
        var l = Link(settings: settings, now: t0)
        _ = l.receive(hello(max: 1), now: t0)
        _ = l.receive(bytes(.register([]), id: 2), now: t0)
        let a = l.receive(bytes(.gwOpen(session: 1, protocol: "p", peerAddress: "", peerPort: 0, listener: ""), id: 9), now: t0)
        guard case (.error(let code, _), 9)? = sent(a).first else { return XCTFail("\(a)") }
        XCTAssertEqual(code, IPCErrorCode.unknownKind.rawValue)
        XCTAssertEqual(violation(a)?.violation?.hasSuffix("in protocol version 1"), true)
    }

    func testAMalformedBodyIsAViolation() {
        var l = registered()
        XCTAssertNotNil(violation(l.receive(raw(kind: IPCKind.invalidate.rawValue, id: 0, body: [9]), now: t0)))
    }

    func testARequestKindOnlyTheBrokerSendsIsAnsweredError5() {
        var l = registered()
        let a = l.receive(bytes(authz("x"), id: 3), now: t0)
        guard case (.error(let code, _), 3)? = sent(a).first else { return XCTFail("\(a)") }
        XCTAssertEqual(code, IPCErrorCode.wrongState.rawValue)
        XCTAssertEqual(l.state, .registered)
    }

    func testFramesSplitAcrossReadsAreJoined() {
        var l = Link(settings: settings, now: t0)
        var h = hello()
        let first = h.readSlice(length: 7)!
        XCTAssertTrue(l.receive(first, now: t0).isEmpty)
        XCTAssertEqual(sent(l.receive(h, now: t0)).count, 1)
    }

    // MARK: Health

    func testAHangIsDetectedByTheHealthTimeout() {
        var l = registered()
        let pending = request(&l, authz("a"), waiter: 1, timeout: 60 * second)
        XCTAssertEqual(l.nextDeadline(), t0 + 5 * second)
        let ping1 = l.tick(now: t0 + 5 * second)
        guard case (.ping, let id1)? = sent(ping1).first else { return XCTFail("no PING: \(ping1)") }
        XCTAssertNotEqual(id1, pending)
        XCTAssertTrue(l.receive(bytes(.pong, id: id1), now: t0 + 6 * second).isEmpty, "answered: nothing to do")
        // The next ping goes unanswered.
        let ping2 = l.tick(now: t0 + 10 * second)
        XCTAssertEqual(sent(ping2).first?.0, .ping)
        XCTAssertNil(ended(l.tick(now: t0 + 15 * second)))  // a third ping, still within the timeout
        XCTAssertTrue(l.tick(now: t0 + 20 * second - 1).allSatisfy { if case .send = $0 { return true }; if case .flush = $0 { return true }; return false })
        let a = l.tick(now: t0 + 20 * second)
        XCTAssertEqual(violation(a), .healthTimeout)
        XCTAssertEqual(failed(a).map(\.0), [1], "pending requests fail with the connection")
        XCTAssertEqual(failed(a).first?.1, .closed("sc"))
        XCTAssertEqual(ended(a)?.0, .healthTimeout)
        XCTAssertEqual(ended(a)?.1, true)
        XCTAssertEqual(l.nextDeadline(), nil)
    }

    func testAnErrorAnswerToAHealthPingIsStillAnAnswer() {
        var l = registered()
        guard case (.ping, let id)? = sent(l.tick(now: t0 + 5 * second)).first else { return XCTFail() }
        XCTAssertTrue(l.receive(bytes(.error(code: 7, message: "busy"), id: id), now: t0 + 6 * second).isEmpty)
        XCTAssertNil(ended(l.tick(now: t0 + 15 * second)))
    }

    // MARK: Closing

    func testClosingFailsEveryPendingRequest() {
        var l = registered()
        for w in 1...3 { _ = request(&l, authz("\(w)"), waiter: w) }
        let a = l.channelClosed()
        XCTAssertEqual(failed(a).map(\.0), [1, 2, 3])
        XCTAssertTrue(failed(a).allSatisfy { $0.1 == .closed("sc") })
        XCTAssertEqual(ended(a)?.0, .peerClosed)
        XCTAssertEqual(ended(a)?.1, true)
        XCTAssertTrue(l.channelClosed().isEmpty, "once")
        XCTAssertEqual(failed(l.request(authz("x"), timeout: second, waiter: 4, now: t0)).first?.1, .down("sc"))
    }

    func testTheBrokerSaysGoodbyeToAServingSidecarOnce() {
        var l = registered()
        _ = request(&l, authz("a"), waiter: 1)
        let a = l.close(.brokerShutdown)
        XCTAssertEqual(sent(a).first?.0, .goodbye(reason: "broker shutting down"))
        XCTAssertTrue(closesChannel(a))
        XCTAssertTrue(l.close(.replaced).isEmpty)
        let e = l.channelClosed()
        XCTAssertEqual(failed(e).map(\.0), [1])
        XCTAssertEqual(ended(e)?.0, .brokerShutdown)
    }

    func testNoGoodbyeBeforeRegister() {
        var l = Link(settings: settings, now: t0)
        _ = l.receive(hello(), now: t0)
        let a = l.close(.replaced)
        XCTAssertTrue(sent(a).isEmpty)
        XCTAssertTrue(closesChannel(a))
    }

    func testTheSidecarsGoodbyeClosesWithItsReason() {
        var l = registered()
        let a = l.receive(bytes(.goodbye(reason: "upgrade"), id: 0), now: t0)
        XCTAssertTrue(a.contains { if case .saidGoodbye = $0 { return true } else { return false } })
        XCTAssertTrue(closesChannel(a))
        XCTAssertEqual(ended(l.channelClosed())?.0, .goodbye("upgrade"))
    }

    func testAFrameCutShortByTheCloseIsAViolation() {
        var l = registered()
        var h = bytes(.ping, id: 3)
        _ = l.receive(h.readSlice(length: 6)!, now: t0)
        let a = l.channelClosed()
        XCTAssertEqual(violation(a)?.violation, "connection closed inside a frame (6 bytes)")
        XCTAssertEqual(ended(a)?.1, true)
    }

    func testATransportErrorIsTheCloseReason() {
        var l = registered()
        XCTAssertTrue(closesChannel(l.failed("Connection reset by peer")))
        XCTAssertEqual(ended(l.channelClosed())?.0, .transportError("Connection reset by peer"))
    }

    func testCloseReasonsKeepTheirText() {
        XCTAssertEqual("\(SidecarCloseReason.healthTimeout)", "protocol violation: no PONG within the health timeout")
        XCTAssertEqual("\(SidecarCloseReason.helloTimeout)", "protocol violation: no HELLO within the handshake timeout")
        XCTAssertEqual("\(SidecarCloseReason.protocolViolation("x"))", "protocol violation: x")
        XCTAssertEqual("\(SidecarCloseReason.peerClosed)", "connection closed")
        XCTAssertEqual("\(SidecarCloseReason.goodbye("r"))", "goodbye: r")
        XCTAssertEqual("\(SidecarCloseReason.replaced)", "replaced by a new connection with the same name")
        XCTAssertNil(SidecarCloseReason.brokerShutdown.violation)
    }

    // MARK: Gateway frames and notifications

    func testGatewayAndInvalidateFramesBecomeActions() {
        var l = registered([.gateway(protocol: "p")])
        let a = l.receive(bytes(.gwOpen(session: 4, protocol: "p", peerAddress: "a", peerPort: 1, listener: "l"), id: 8), now: t0)
            + l.receive(bytes(.gwData(session: 4, data: ByteBuffer(string: "x")), id: 0), now: t0)
            + l.receive(bytes(.gwClose(session: 4, reason: ""), id: 0), now: t0)
            + l.receive(bytes(.invalidate(scope: 1, value: "u"), id: 0), now: t0)
        let names = a.map { a -> String in
            switch a {
            case .gatewayOpen(let id, let s, _, _, _, _): return "open \(id) \(s)"
            case .gatewayData(let s, let d): return "data \(s) \(d.readableBytes)"
            case .gatewayClose(let s): return "close \(s)"
            case .invalidate(let scope, let v): return "invalidate \(scope) \(v)"
            default: return "\(a)"
            }
        }
        XCTAssertEqual(names, ["open 8 4", "data 4 1", "close 4", "invalidate 1 u"])
    }
}

final class PendingRequestsTests: XCTestCase {
    func testIdsCountUpAndRepliesMatchOnce() {
        var p = PendingRequests<String>()
        let a = p.add("a", deadline: 10)
        let b = p.add("b", deadline: 5)
        XCTAssertEqual([a, b], [1, 2])
        guard case .waiter("b") = p.match(b) else { return XCTFail() }
        guard case .late = p.match(b) else { return XCTFail("answered twice: late") }
        guard case .unknown = p.match(3) else { return XCTFail("never given out") }
        guard case .unknown = p.match(0) else { return XCTFail("id 0") }
        XCTAssertEqual(p.count, 1)
    }

    func testExpiryIsByDeadlineEarliestFirstAndSkipsAnswered() {
        var p = PendingRequests<String>()
        _ = p.add("late", deadline: 30)
        let answered = p.add("answered", deadline: 10)
        _ = p.add("early", deadline: 20)
        _ = p.match(answered)
        XCTAssertEqual(p.nextDeadline(), 20)
        XCTAssertEqual(p.expired(now: 19), [])
        XCTAssertEqual(p.expired(now: 30), ["early", "late"])
        XCTAssertNil(p.nextDeadline())
        XCTAssertTrue(p.isEmpty)
    }

    func testRemoveAllEmptiesTheTable() {
        var p = PendingRequests<Int>()
        for i in 0..<5 { _ = p.add(i, deadline: UInt64(100 - i)) }
        XCTAssertEqual(p.removeAll(), [0, 1, 2, 3, 4])
        XCTAssertNil(p.nextDeadline())
        XCTAssertEqual(p.add(9, deadline: 1), 6, "ids are not reused")
    }
}
