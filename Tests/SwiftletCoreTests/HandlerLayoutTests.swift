import MQTTCodec
import MQTTProtocol
import XCTest
@testable import SwiftletCore

/// Every connection keeps its handler and state machine, parked or not (issue 19's memory per
/// idle connection, measured by scripts/bench): these fail when a field is added where it
/// makes either grow past the packed size, so the next change puts it in the padding or out of
/// line on purpose. A dependency whose types grow (String, ByteBuffer, Deque) can fail them
/// too: then the fields are packed again, the bound is not raised unmeasured.
final class HandlerLayoutTests: XCTestCase {
    func testStateMachinePacksIn112Bytes() {
        XCTAssertLessThanOrEqual(MemoryLayout<ConnectionStateMachine.ConnectRequest?>.size, 43)
        XCTAssertLessThanOrEqual(MemoryLayout<ConnectionStateMachine>.size, 112)
    }

    /// 344 B is what malloc's 352 B size class gives (`malloc_usable_size`); the handler was
    /// 440 B (448 B class) before its fields were ordered to pack.
    func testHandlerFitsMallocs352ByteClass() throws {
        let h = makeHarness()
        let handler = MQTTConnectionHandler(broker: h.broker, ctx: h.ctx, peerHost: "127.0.0.1", peerPort: 1883,
                                            listener: h.broker.listenerState(named: "layout"))
        let size = Heap.size(of: handler)
        try XCTSkipIf(size == 0, "malloc_usable_size is not available (not glibc)")
        XCTAssertLessThanOrEqual(size, 344)
        XCTAssertEqual(handler.peerPort, 1883)
        XCTAssertEqual(handler.sweepSlot, -1)
    }

    /// The narrow fields keep what the wider properties around them say.
    func testNarrowFieldsRoundTrip() {
        let h = makeHarness()
        let handler = MQTTConnectionHandler(broker: h.broker, ctx: h.ctx, peerHost: "::1", peerPort: 65_535,
                                            listener: h.broker.listenerState(named: "layout"))
        XCTAssertEqual(handler.peerPort, 65_535)
        handler.peerPort = 70_000          // not a port: clamped, never a trap
        XCTAssertEqual(handler.peerPort, 65_535)
        handler.sweepSlot = 1_000_000
        XCTAssertEqual(handler.sweepSlot, 1_000_000)
        XCTAssertNil(handler.will)
        XCTAssertNil(handler.connectionPeer)
        handler.will = Will(topic: "w", payload: .init(), qos: .atLeastOnce, retain: false)
        XCTAssertEqual(handler.will?.topic, "w")
        XCTAssertNil(handler.connectionPeer)
        handler.will = nil
        XCTAssertNil(handler.will)

        // A listener's peer (certificate names, a proxied address) and a will share the box:
        // each is kept and dropped on its own.
        let peer = ConnectionPeer()
        peer.commonName = "device-1"
        handler.connectionPeer = peer
        handler.will = Will(topic: "w2", payload: .init(), qos: .atMostOnce, retain: true)
        handler.will = nil
        XCTAssertEqual(handler.connectionPeer?.commonName, "device-1")
        handler.will = Will(topic: "w3", payload: .init(), qos: .atMostOnce, retain: true)
        handler.connectionPeer = nil
        XCTAssertEqual(handler.will?.topic, "w3")
        XCTAssertNil(handler.connectionPeer)
    }
}
