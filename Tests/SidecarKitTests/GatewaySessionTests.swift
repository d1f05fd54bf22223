import Logging
import NIOCore
@testable import SidecarKit
import XCTest

// Gateway sessions (SPEC 7) through SidecarKit against a fake broker: GW_OPEN and its answer,
// data both ways, GW_CLOSE both ways, and sessions ending with their connection.
final class GatewaySessionTests: XCTestCase {
    private func makeSidecar(_ path: String, protocols: [String] = ["mqtt-sn"]) throws -> Sidecar {
        var options = SidecarOptions()
        options.handleSignals = false
        options.backoff = Backoff(initial: .milliseconds(5), maximum: .milliseconds(50))
        var logger = Logger(label: "test.gateway")
        logger.logLevel = .critical
        var handlers = SidecarHandlers()
        for p in protocols { handlers.gateway(protocol: p) }
        return try Sidecar(name: "gw", handlers: handlers, environment: SidecarEnvironment(socketPath: path),
                           options: options, logger: logger)
    }

    private func running(_ sidecar: Sidecar, _ body: () async throws -> Void) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await sidecar.run() }
            do {
                try await body()
            } catch {
                sidecar.shutdown()
                throw error
            }
            sidecar.shutdown()
            try await group.waitForAll()
        }
    }

    /// Opens a session on `conn`, answering GW_OPEN with `answer` (nil: GW_OPENED).
    private func open(_ sidecar: Sidecar, _ conn: FakeConnection, answer: IPCMessage? = nil) async throws -> GatewaySession {
        async let opened = sidecar.openSession(protocol: "mqtt-sn", peerAddress: "192.0.2.1", peerPort: 47000,
                                               listener: "mqtt-sn:udp:0.0.0.0:1884")
        let (open, rid) = try await conn.receive()
        guard case .gwOpen(let sid, "mqtt-sn", "192.0.2.1", 47000, "mqtt-sn:udp:0.0.0.0:1884") = open else {
            XCTFail("expected GW_OPEN, got \(open)")
            throw GatewayError.closed
        }
        XCTAssertNotEqual(rid, 0)
        try await conn.send(answer ?? .gwOpened(session: sid), id: rid)
        return try await opened
    }

    func testRegistersVersion2AndTheProtocol() async throws {
        let broker = try await FakeBroker()
        let sidecar = try makeSidecar(broker.path, protocols: ["mqtt-sn", "stomp"])
        try await running(sidecar) {
            let conn = try await broker.accept()
            let (hello, caps) = try await conn.handshake(version: 2)
            guard case .hello(2, 3, _, _, _) = hello else { return XCTFail("\(hello)") }
            XCTAssertEqual(caps, [.gateway(protocol: "mqtt-sn"), .gateway(protocol: "stomp")])
            try await conn.roundTrip()
            do {
                _ = try await sidecar.openSession(protocol: "coap", peerAddress: "x")
                XCTFail("opened an unregistered protocol")
            } catch let e as GatewayError {
                XCTAssertEqual(e, .protocolNotRegistered("coap"))
            }
        }
        await broker.close()
    }

    func testDataBothWaysAndTheBrokersClose() async throws {
        let broker = try await FakeBroker()
        let sidecar = try makeSidecar(broker.path)
        try await running(sidecar) {
            let conn = try await broker.accept()
            try await conn.handshake(version: 2)
            try await conn.roundTrip()  // REGISTERED has been processed: the sidecar is serving
            let s = try await open(sidecar, conn)
            XCTAssertEqual(s.id, 1)
            try await s.send([0x10, 0x02, 0x00, 0x00])
            let data = try await conn.receive().0
            XCTAssertEqual(data, .gwData(session: 1, data: ByteBuffer(bytes: [0x10, 0x02, 0x00, 0x00])))
            // More than one frame's worth is split into chunks of at most 64 KiB, in order.
            let big = ByteBuffer(bytes: (0..<150_000).map { UInt8($0 & 0xFF) })
            try await s.send(big)
            var got = ByteBuffer()
            while got.readableBytes < big.readableBytes {
                guard case .gwData(1, var chunk) = try await conn.receive().0 else { return XCTFail("expected GW_DATA") }
                XCTAssertLessThanOrEqual(chunk.readableBytes, 65_536)
                got.writeBuffer(&chunk)
            }
            XCTAssertEqual(got, big)

            var inbound = s.inbound.makeAsyncIterator()
            try await conn.send(.gwData(session: 1, data: ByteBuffer(bytes: [0x20, 0x02, 0x00, 0x00])))
            try await conn.send(.gwData(session: 42, data: ByteBuffer(bytes: [0xFF])))  // unknown: ignored
            let first = await inbound.next()
            XCTAssertEqual(first, ByteBuffer(bytes: [0x20, 0x02, 0x00, 0x00]))

            let closed = Inbox<String>("onClose")
            s.onClose { closed.push($0) }
            try await conn.send(.gwClose(session: 1, reason: "disconnected"))
            let reason = try await closed.pop()
            XCTAssertEqual(reason, "disconnected")
            XCTAssertEqual(s.closeReason, "disconnected")
            let end = await inbound.next()
            XCTAssertNil(end)
            do {
                try await s.send([0xC0, 0x00])
                XCTFail("sent on a closed session")
            } catch let e as GatewayError {
                XCTAssertEqual(e, .closed)
            }
            // The id is free again: the next session may take it or another; it opens.
            let again = try await open(sidecar, conn)
            XCTAssertNil(again.closeReason)
        }
        await broker.close()
    }

    func testSidecarCloseRefusalAndConnectionLoss() async throws {
        let broker = try await FakeBroker()
        let sidecar = try makeSidecar(broker.path)
        try await running(sidecar) {
            let conn = try await broker.accept()
            try await conn.handshake(version: 2)
            try await conn.roundTrip()  // REGISTERED has been processed: the sidecar is serving
            let s = try await open(sidecar, conn)
            let closed = Inbox<String>("onClose")
            s.onClose { closed.push($0) }
            await s.close(reason: "client went away")
            let close = try await conn.receive().0
            XCTAssertEqual(close, .gwClose(session: s.id, reason: "client went away"))
            try await conn.send(.gwClose(session: s.id, reason: "closed by sidecar"))
            let confirmed = try await closed.pop()
            XCTAssertEqual(confirmed, "closed by sidecar")

            do {
                _ = try await open(sidecar, conn, answer: .error(code: 5, message: "no gateway capability"))
                XCTFail("a refused session opened")
            } catch let e as GatewayError {
                XCTAssertEqual(e, .refused(code: 5, message: "no gateway capability"))
            }

            let survivor = try await open(sidecar, conn)
            let lost = Inbox<String>("onClose after the connection ended")
            survivor.onClose { lost.push($0) }
            try await conn.channel.close()
            let why = try await lost.pop()
            XCTAssertEqual(why, "connection to the broker lost")
            // A new connection starts with no sessions.
            let next = try await broker.accept()
            try await next.handshake(version: 2)
            try await next.roundTrip()  // REGISTERED has been processed
            let fresh = try await open(sidecar, next)
            XCTAssertNil(fresh.closeReason)
        }
        await broker.close()
    }

    func testAGatewaySidecarRefusesAVersion1Broker() async throws {
        let broker = try await FakeBroker()
        let sidecar = try makeSidecar(broker.path)
        try await running(sidecar) {
            let conn = try await broker.accept()
            let (_, helloId) = try await conn.receive()
            try await conn.send(.welcome(version: 1, brokerVersion: "old", node: "n", maxFrame: 65_536), id: helloId)
            let seen = try await conn.waitClosed()
            XCTAssertEqual(seen.map(\.kind), [.goodbye])
            do {
                _ = try await sidecar.openSession(protocol: "mqtt-sn", peerAddress: "x")
                XCTFail("opened without a version 2 connection")
            } catch let e as GatewayError {
                XCTAssertEqual(e, .notServing)
            }
        }
        await broker.close()
    }
}
