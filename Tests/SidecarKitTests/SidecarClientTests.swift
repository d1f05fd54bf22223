import Foundation
import Logging
import NIOCore
import SidecarKit
import SwiftletIPC
import XCTest

struct Boom: Error, CustomStringConvertible {
    var description: String { "boom" }
}

/// SidecarKit's client against a fake broker on a temporary Unix socket.
final class SidecarClientTests: XCTestCase {
    func makeSidecar(_ path: String, _ handlers: SidecarHandlers, name: String = "tester") throws -> Sidecar {
        var options = SidecarOptions()
        options.handleSignals = false
        options.backoff = Backoff(initial: .milliseconds(5), maximum: .milliseconds(50))
        options.maxFrame = 200_000
        var logger = Logger(label: "test.sidecar")
        logger.logLevel = ProcessInfo.processInfo.environment["SWIFTLET_LOG_LEVEL"].flatMap { Logger.Level(rawValue: $0) } ?? .critical
        return try Sidecar(name: name, handlers: handlers,
                           environment: SidecarEnvironment(socketPath: path), options: options, logger: logger)
    }

    /// Runs the sidecar while `body` runs, then shuts it down and waits for `run()` to return.
    func running(_ sidecar: Sidecar, _ body: () async throws -> Void) async throws {
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

    func demoHandlers(gate: Inbox<Void>? = nil, events: Inbox<[IPCHookEvent]>? = nil) -> SidecarHandlers {
        var h = SidecarHandlers()
        h.onAuthenticate(order: 7) { req in
            if req.client.username == "slow" { try await gate?.pop() }
            guard req.client.username == "alice" || req.client.username == "slow" else { return .ignore }
            return req.passwordText == "secret" ? .allow(superuser: false, ttlMs: 1000) : .deny("bad password")
        }
        h.onAuthorize(order: 8) { req in
            req.topic.hasPrefix("a/") ? .allow() : .deny("not a/", ttlMs: 10)
        }
        h.onHook("client.connected") { events?.push($0) }
        h.onHook("message.acked") { events?.push($0) }
        h.onPublish(budgetMs: 250) { _, msg in
            if msg.topic == "drop/me" { return .drop }
            if msg.topic == "rewrite" {
                var m = msg
                m.topic = "rewritten"
                return .replace(m)
            }
            return .continue
        }
        h.addCommand("cmd", usage: "cmd arg1 arg2: echoes") { args in .ok("cmd called with: \(args.joined(separator: " "))") }
        h.addCommand("boom", usage: "boom: throws") { _ in throw Boom() }
        return h
    }

    func testHandshakeAndRegistration() async throws {
        let broker = try await FakeBroker()
        let sidecar = try makeSidecar(broker.path, demoHandlers())
        try await running(sidecar) {
            let conn = try await broker.accept()
            let (hello, caps) = try await conn.handshake(maxFrame: 100_000)
            XCTAssertEqual(hello, .hello(minVersion: 1, maxVersion: 3, name: "tester", sidecarVersion: "0.1.0", maxFrame: 200_000))
            XCTAssertEqual(caps, [
                .authn(order: 7), .authz(order: 8),
                .hook(name: "client.connected", sync: false, budgetMs: 0),
                .hook(name: "message.acked", sync: false, budgetMs: 0),
                .hook(name: "message.publish", sync: true, budgetMs: 250),
                .ctl(command: "boom", usage: "boom: throws"),
                .ctl(command: "cmd", usage: "cmd arg1 arg2: echoes"),
            ])
            try await conn.roundTrip()
            XCTAssertTrue(sidecar.isServing)
            XCTAssertEqual(sidecar.registrations, 1)
        }
        await broker.close()
    }

    func testRequestsAreServedConcurrentlyAndRepliesMatchIds() async throws {
        let broker = try await FakeBroker()
        let gate = Inbox<Void>("the slow handler's gate")
        let sidecar = try makeSidecar(broker.path, demoHandlers(gate: gate))
        try await running(sidecar) {
            let conn = try await broker.accept()
            try await conn.handshake()
            var slow = testClient
            slow.username = "slow"
            var bob = testClient
            bob.username = "bob"
            // The slow authentication is sent first and answered last.
            try await conn.send(.authnRequest(client: slow, password: ByteBuffer(string: "secret")), id: 10)
            try await conn.send(.authnRequest(client: testClient, password: ByteBuffer(string: "secret")), id: 11)
            try await conn.send(.authnRequest(client: testClient, password: ByteBuffer(string: "nope")), id: 12)
            try await conn.send(.authnRequest(client: bob, password: nil), id: 13)
            try await conn.send(.authzRequest(client: testClient, access: .publish, topic: "a/b", qos: 1, retain: false), id: 14)
            try await conn.send(.authzRequest(client: testClient, access: .subscribe, topic: "b/#", qos: 0, retain: false), id: 15)
            try await conn.send(.ctlRequest(command: "cmd", args: ["arg1", "arg2"]), id: 16)
            try await conn.send(.ctlRequest(command: "boom", args: []), id: 17)
            try await conn.send(.ctlRequest(command: "nosuch", args: []), id: 18)
            try await conn.send(.hookPublish(client: testClient, message: IPCPublishMessage(
                topic: "rewrite", payload: ByteBuffer(string: "x"), qos: 1, retain: false)), id: 19)
            try await conn.send(.hookPublish(client: testClient, message: IPCPublishMessage(
                topic: "drop/me", payload: ByteBuffer(), qos: 0, retain: false)), id: 20)

            var replies: [UInt32: IPCMessage] = [:]
            for _ in 11...20 {
                let (m, id) = try await conn.receive()
                replies[id] = m
            }
            XCTAssertNil(replies[10], "the slow request must not hold back the others")
            XCTAssertEqual(replies[11], .authnReply(decision: .allow, superuser: false, ttlMs: 1000, reason: ""))
            XCTAssertEqual(replies[12], .authnReply(decision: .deny, superuser: false, ttlMs: 0, reason: "bad password"))
            XCTAssertEqual(replies[13], .authnReply(decision: .ignore, superuser: false, ttlMs: 0, reason: ""))
            XCTAssertEqual(replies[14], .authzReply(decision: .allow, ttlMs: 0, reason: ""))
            XCTAssertEqual(replies[15], .authzReply(decision: .deny, ttlMs: 10, reason: "not a/"))
            XCTAssertEqual(replies[16], .ctlReply(status: 0, text: "cmd called with: arg1 arg2", json: ""))
            XCTAssertEqual(replies[17], .error(code: IPCErrorCode.internalError.rawValue, message: "boom"))
            guard case .error(let code, _)? = replies[18] else { return XCTFail("unknown command: \(String(describing: replies[18]))") }
            XCTAssertEqual(code, IPCErrorCode.unsupported.rawValue)
            XCTAssertEqual(replies[19], .hookPublishReply(action: 1, message: IPCPublishMessage(
                topic: "rewritten", payload: ByteBuffer(string: "x"), qos: 1, retain: false)))
            XCTAssertEqual(replies[20], .hookPublishReply(action: 2, message: nil))

            gate.push(())
            let (m, id) = try await conn.receive()
            XCTAssertEqual(id, 10)
            XCTAssertEqual(m, .authnReply(decision: .allow, superuser: false, ttlMs: 1000, reason: ""))
        }
        await broker.close()
    }

    func testHookEventsAreDeliveredPerHookInOrder() async throws {
        let broker = try await FakeBroker()
        let events = Inbox<[IPCHookEvent]>("hook events")
        let sidecar = try makeSidecar(broker.path, demoHandlers(events: events))
        try await running(sidecar) {
            let conn = try await broker.accept()
            try await conn.handshake()
            func ev(_ hook: String, _ id: String) -> IPCHookEvent {
                IPCHookEvent(hook: hook, timestampMs: 1, fields: [IPCField("client_id", id)])
            }
            try await conn.send(.hookEvents([ev("client.connected", "c1"), ev("message.acked", "c2"),
                                             ev("client.connected", "c3"), ev("session.subscribed", "c4")]))
            let first = try await events.pop()
            XCTAssertEqual(first.map(\.hook), ["client.connected", "client.connected"])
            XCTAssertEqual(first.map { $0["client_id"] }, ["c1", "c3"])
            let second = try await events.pop()
            XCTAssertEqual(second.map { $0["client_id"] }, ["c2"])
            try await conn.send(.hookEvents([ev("client.connected", "c5")]))
            let got1 = try await events.pop().map { $0["client_id"] }
            XCTAssertEqual(got1, ["c5"])
            XCTAssertEqual(sidecar.droppedHookBatches, 0)
        }
        await broker.close()
    }

    func testAuthPluginCommandInvalidatesAndReportsStatus() async throws {
        XCTAssertEqual(InvalidateScope(arguments: ["user", "alice"]), .username("alice"))
        XCTAssertEqual(InvalidateScope(arguments: ["client", "c1"]), .clientId("c1"))
        XCTAssertEqual(InvalidateScope(arguments: ["all"]), .all)
        for bad in [[], ["user"], ["all", "x"], ["group", "g"]] { XCTAssertNil(InvalidateScope(arguments: bad)) }

        let broker = try await FakeBroker()
        var h = SidecarHandlers()
        h.addAuthPluginCommand("auth_x") { ("db \"q\": reachable", ["reachable": true, "pool_size": 3, "server": "db \"q\""]) }
        XCTAssertTrue(h.capabilities.contains(.ctl(command: "auth_x", usage: h.commands["auth_x"]!.usage)))
        let sidecar = try makeSidecar(broker.path, h)
        try await running(sidecar) {
            let conn = try await broker.accept()
            try await conn.handshake()
            try await conn.send(.ctlRequest(command: "auth_x", args: ["invalidate", "user", "bob"]), id: 20)
            var got = [try await conn.receive(), try await conn.receive()]
            got.sort { $0.1 < $1.1 }
            XCTAssertEqual(got[0].0, .invalidate(scope: 1, value: "bob"))
            XCTAssertEqual(got[1].0, .ctlReply(status: 0, text: "auth_x: invalidated cached answers of user \"bob\"", json: ""))
            XCTAssertEqual(got[1].1, 20)

            try await conn.send(.ctlRequest(command: "auth_x", args: ["status"]), id: 21)
            let (status, _) = try await conn.receive()
            guard case .ctlReply(0, "db \"q\": reachable", let json) = status else { return XCTFail("\(status)") }
            let o = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
            XCTAssertEqual(o?["reachable"] as? Bool, true)
            XCTAssertEqual(o?["pool_size"] as? Int, 3)
            XCTAssertEqual(o?["server"] as? String, "db \"q\"")

            for args in [["invalidate"], ["invalidate", "bogus"], ["status", "x"], []] {
                try await conn.send(.ctlRequest(command: "auth_x", args: args), id: 22)
                let (reply, _) = try await conn.receive()
                guard case .ctlReply(1, let text, _) = reply else { return XCTFail("\(args): \(reply)") }
                XCTAssertTrue(text.contains("invalidate user NAME | client ID | all"), text)
            }
        }
        await broker.close()
    }

    func testInvalidateAndGoodbyeOnShutdown() async throws {
        let broker = try await FakeBroker()
        let sidecar = try makeSidecar(broker.path, demoHandlers())
        let notConnected = await sidecar.invalidate(.all)
        XCTAssertFalse(notConnected)
        try await running(sidecar) {
            let conn = try await broker.accept()
            try await conn.handshake()
            try await conn.roundTrip()
            let sent = await sidecar.invalidate(.username("bob"))
            XCTAssertTrue(sent)
            await sidecar.invalidate(.clientId("c9"))
            await sidecar.invalidate(.all)
            let got2 = try await conn.receive().0
            XCTAssertEqual(got2, .invalidate(scope: 1, value: "bob"))
            let got3 = try await conn.receive().0
            XCTAssertEqual(got3, .invalidate(scope: 2, value: "c9"))
            let got4 = try await conn.receive().0
            XCTAssertEqual(got4, .invalidate(scope: 0, value: ""))
            sidecar.shutdown(reason: "SIGTERM")
            let last = try await conn.waitClosed()
            XCTAssertEqual(last, [.goodbye(reason: "SIGTERM")])
        }
        await broker.close()
    }

    func testReconnectsAndRegistersAgainWhenTheBrokerDrops() async throws {
        let broker = try await FakeBroker()
        let sidecar = try makeSidecar(broker.path, demoHandlers())
        try await running(sidecar) {
            let first = try await broker.accept()
            try await first.handshake()
            try await first.roundTrip()
            try await first.channel.close().get()

            let second = try await broker.accept()
            let (_, caps) = try await second.handshake()
            XCTAssertEqual(caps.count, 7)
            try await second.roundTrip()
            XCTAssertEqual(sidecar.registrations, 2)
            // Serving again on the new connection.
            try await second.send(.authzRequest(client: testClient, access: .publish, topic: "a/1", qos: 0, retain: false), id: 3)
            let got5 = try await second.receive().0
            XCTAssertEqual(got5, .authzReply(decision: .allow, ttlMs: 0, reason: ""))

            // A broker that goes away and comes back on the same path.
            await broker.close()
            try await second.channel.close().get()
            let again = try await FakeBroker(path: broker.path)
            let third = try await again.accept()
            try await third.handshake()
            try await third.roundTrip()
            XCTAssertEqual(sidecar.registrations, 3)
            await again.close()
        }
    }

    func testWaitsForABrokerThatIsNotThereYet() async throws {
        let path = FakeBroker.temporaryPath()
        let sidecar = try makeSidecar(path, demoHandlers())
        try await running(sidecar) {
            try await Task.sleep(nanoseconds: 30_000_000)
            XCTAssertFalse(sidecar.isServing)
            let broker = try await FakeBroker(path: path)
            let conn = try await broker.accept()
            try await conn.handshake()
            try await conn.roundTrip()
            XCTAssertTrue(sidecar.isServing)
            await broker.close()
        }
    }

    /// Each violation closes the connection (answering or saying GOODBYE where the spec
    /// lets it) and the sidecar comes back, handshake and all.
    func testProtocolViolationsByTheBrokerCauseAReconnect() async throws {
        let broker = try await FakeBroker()
        let sidecar = try makeSidecar(broker.path, demoHandlers())
        let violations: [(String, [UInt8], [IPCMessage])] = [
            ("unknown kind with an id", [0, 0, 0, 5, 0x99, 0, 0, 0, 7],
             [.error(code: IPCErrorCode.unknownKind.rawValue, message: "unknown kind 0x99")]),
            ("unknown kind without an id", [0, 0, 0, 5, 0x0F, 0, 0, 0, 0], []),
            ("length above the negotiated maximum", [0x00, 0x01, 0x86, 0xA1, 0x10, 0, 0, 0, 1], []),  // 100,001
            ("length below 5", [0, 0, 0, 4, 0x05, 0, 0, 0], []),
            ("malformed AUTHN_REQUEST body", [0, 0, 0, 7, 0x10, 0, 0, 0, 3, 0xFF, 0xFF], [.goodbye(reason: "")]),
            ("reply to no request", [0, 0, 0, 5, 0x06, 0, 0, 0, 42], [.goodbye(reason: "")]),
            ("garbage", Array("GET / HTTP/1.1\r\n\r\n".utf8), []),
        ]
        try await running(sidecar) {
            var conn = try await broker.accept()
            try await conn.handshake(maxFrame: 100_000)
            for (what, bytes, expected) in violations {
                try await conn.sendRaw(bytes)
                let seen = try await conn.waitClosed()
                XCTAssertEqual(seen.map(\.kind), expected.map(\.kind), what)
                if case .error? = expected.first { XCTAssertEqual(seen, expected, what) }
                conn = try await broker.accept()
                try await conn.handshake(maxFrame: 100_000)
                try await conn.roundTrip()
            }
            XCTAssertEqual(sidecar.registrations, violations.count + 1)
        }
        await broker.close()
    }

    func testRequestsBeforeRegisteredAreRefusedAndAWrongVersionReconnects() async throws {
        let broker = try await FakeBroker()
        let sidecar = try makeSidecar(broker.path, demoHandlers())
        try await running(sidecar) {
            let conn = try await broker.accept()
            let (_, helloId) = try await conn.receive()
            try await conn.send(.authnRequest(client: testClient, password: nil), id: 5)
            let got6 = try await conn.receive().0
            XCTAssertEqual(got6, .error(code: IPCErrorCode.wrongState.rawValue, message: "not registered yet"))
            try await conn.send(.welcome(version: 4, brokerVersion: "future", node: "n", maxFrame: 1 << 20), id: helloId)
            let seen = try await conn.waitClosed()
            XCTAssertEqual(seen.map(\.kind), [.goodbye])
            let next = try await broker.accept()
            try await next.handshake()
            try await next.roundTrip()
        }
        await broker.close()
    }

    func testAnUnansweredHandshakeTimesOut() async throws {
        let broker = try await FakeBroker()
        var options = SidecarOptions()
        options.handleSignals = false
        options.handshakeTimeout = .milliseconds(100)
        options.backoff = Backoff(initial: .milliseconds(5), maximum: .milliseconds(20))
        var logger = Logger(label: "test.sidecar")
        logger.logLevel = .critical
        let sidecar = try Sidecar(name: "slowbroker", handlers: demoHandlers(),
                                  environment: SidecarEnvironment(socketPath: broker.path), options: options, logger: logger)
        try await running(sidecar) {
            let conn = try await broker.accept()
            _ = try await conn.receive()  // HELLO, never answered
            try await conn.waitClosed()
            let next = try await broker.accept()
            try await next.handshake()
            try await next.roundTrip()
        }
        await broker.close()
    }
}
