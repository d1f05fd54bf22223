@testable import SidecarKit
import NIOCore
import SwiftletIPC
import XCTest

/// The per-connection state machine, without a socket.
final class SidecarSessionTests: XCTestCase {
    func session(maxFrame: UInt32 = 1 << 20) -> SidecarSession {
        SidecarSession(name: "s", version: "1", localMaxFrame: maxFrame, capabilities: [.authn(order: 1)])
    }

    func frame(_ m: IPCMessage, _ id: UInt32) -> IPCFrame { m.frame(requestId: id) }

    func testHandshakeNegotiatesTheSmallerMaximumFrame() {
        var s = session(maxFrame: 200_000)
        XCTAssertEqual(s.hello(), IPCMessage.hello(minVersion: 1, maxVersion: 3, name: "s", sidecarVersion: "1",
                                                   maxFrame: 200_000).frame(requestId: 1))
        let actions = s.receive(frame(.welcome(version: 1, brokerVersion: "b", node: "n", maxFrame: 100_000), 1))
        XCTAssertEqual(s.maxFrame, 100_000)
        guard actions.count == 2, case .send(.register(let caps), 2) = actions[1] else { return XCTFail("\(actions)") }
        XCTAssertEqual(caps, [.authn(order: 1)])
        guard case .registered(["x"]) = s.receive(frame(.registered(hooks: ["x"]), 2)).first else { return XCTFail() }
        XCTAssertEqual(s.state, .serving)
        var bigger = session(maxFrame: 100_000)
        _ = bigger.receive(frame(.welcome(version: 1, brokerVersion: "b", node: "n", maxFrame: 16 << 20), 1))
        XCTAssertEqual(bigger.maxFrame, 100_000)
    }

    func testRequestsBeforeRegisteredAreRefusedWithWrongState() {
        var s = session()
        let a = s.receive(frame(.ctlRequest(command: "x", args: []), 9))
        guard case .send(.error(5, _), 9) = a.first else { return XCTFail("\(a)") }
        XCTAssertEqual(s.state, .awaitingWelcome)
    }

    func testViolationsClose() {
        for (m, id, goodbye) in [(IPCMessage.pong, UInt32(42), true),
                                 (.welcome(version: 1, brokerVersion: "", node: "", maxFrame: 65_536), 7, true),
                                 (.error(code: 8, message: "no"), 1, false),
                                 (.goodbye(reason: "restart"), 0, false)] {
            var s = session()
            let a = s.receive(frame(m, id))
            guard case .close(_, let g) = a.first else { return XCTFail("\(m): \(a)") }
            XCTAssertEqual(g, goodbye, "\(m)")
            XCTAssertEqual(s.state, .closed)
            XCTAssertTrue(s.receive(frame(.ping, 1)).isEmpty, "nothing after close")
        }
        var s = session()
        let a = s.receive(IPCFrame(kind: .authnRequest, requestId: 3, body: ByteBuffer(bytes: [0xFF])))
        guard case .close(let why, true) = a.first else { return XCTFail("\(a)") }
        XCTAssertTrue(why.hasPrefix("malformed"), why)
    }

    func testWrongDirectionKindsAreAnsweredNotFatal() {
        var s = session()
        let a = s.receive(frame(.register([]), 5))
        guard case .send(.error(5, _), 5) = a.first else { return XCTFail("\(a)") }
        guard case .ignore = s.receive(frame(.invalidate(scope: 0, value: ""), 0)).first else { return XCTFail() }
        guard case .send(.pong, 6) = s.receive(frame(.ping, 6)).first else { return XCTFail() }
        XCTAssertEqual(s.state, .awaitingWelcome)
    }
}
