import Foundation
import NIOCore
import SwiftletIPC
import XCTest

/// The built `swiftlet-sidecar-template` binary, with etc/plugins/template.toml, against the
/// fake broker: what the broker (and so a user) sees of it.
final class TemplateSidecarTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    func testTemplateServesAuthACLHooksAndCmdThenStopsOnSIGTERM() async throws {
        let binary = Self.root.appendingPathComponent(".build/debug/swiftlet-sidecar-template").path
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: binary), "build the template first")
        let broker = try await FakeBroker()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.environment = [
            "SWIFTLET_SOCKET": broker.path, "SWIFTLET_SIDECAR_NAME": "template",
            "SWIFTLET_PLUGIN_CONFIG": Self.root.appendingPathComponent("etc/plugins/template.toml").path,
            "SWIFTLET_LOG_LEVEL": "info",
        ]
        let stderr = Pipe()
        process.standardError = stderr
        let exited = Inbox<Int32>("the template to exit")
        process.terminationHandler = { exited.push($0.terminationStatus) }
        try process.run()
        defer { if process.isRunning { process.terminate() } }

        let conn = try await broker.accept(timeout: 10)
        let (hello, caps) = try await conn.handshake()
        guard case .hello(_, _, let name, _, _) = hello else { return XCTFail() }
        XCTAssertEqual(name, "template")
        let hooks = caps.compactMap { c -> String? in if case .hook(let n, false, 0) = c { return n } else { return nil } }
        XCTAssertEqual(Set(hooks), ["client.connected", "client.subscribe", "client.unsubscribe", "session.subscribed",
                                    "session.unsubscribed", "message.publish", "message.delivered", "message.acked",
                                    "client.disconnected"])
        XCTAssertTrue(caps.contains(.authn(order: 100)))
        XCTAssertTrue(caps.contains(.authz(order: 100)))
        XCTAssertTrue(caps.contains { if case .ctl("cmd", _) = $0 { return true } else { return false } })

        func client(_ user: String?, _ id: String = "c1") -> IPCClient {
            var c = testClient
            c.username = user
            c.clientId = id
            return c
        }
        func ask(_ m: IPCMessage) async throws -> IPCMessage {
            try await conn.send(m, id: 77)
            let (reply, id) = try await conn.receive()
            XCTAssertEqual(id, 77)
            return reply
        }
        func authn(_ user: String?, _ password: String?) async throws -> IPCMessage {
            try await ask(.authnRequest(client: client(user), password: password.map { ByteBuffer(string: $0) }))
        }
        func authz(_ user: String?, _ access: IPCAccess, _ topic: String, id: String = "c1") async throws -> IPCDecision? {
            guard case .authzReply(let d, _, _) = try await ask(.authzRequest(client: client(user, id), access: access, topic: topic,
                                                                              qos: 0, retain: false)) else { return nil }
            return d
        }

        var r = try await authn("admin", "public")
        XCTAssertEqual(r, .authnReply(decision: .allow, superuser: true, ttlMs: 0, reason: ""))
        r = try await authn("alice", "secret")
        XCTAssertEqual(r, .authnReply(decision: .allow, superuser: false, ttlMs: 0, reason: ""))
        r = try await authn("alice", "secreT")
        XCTAssertEqual(r, .authnReply(decision: .deny, superuser: false, ttlMs: 0, reason: "bad password"))
        r = try await authn("alice", nil)
        XCTAssertEqual(r, .authnReply(decision: .deny, superuser: false, ttlMs: 0, reason: "bad password"))
        r = try await authn("mallory", "x")
        XCTAssertEqual(r, .authnReply(decision: .ignore, superuser: false, ttlMs: 0, reason: ""))
        r = try await authn(nil, nil)
        XCTAssertEqual(r, .authnReply(decision: .ignore, superuser: false, ttlMs: 0, reason: ""))

        var d = try await authz("alice", .publish, "sensors/kitchen/temp")
        XCTAssertEqual(d, .allow)
        d = try await authz("alice", .subscribe, "sensors/+/temp")
        XCTAssertEqual(d, .allow)
        d = try await authz("alice", .publish, "sensors/secret/key")
        XCTAssertEqual(d, .deny)
        d = try await authz("alice", .subscribe, "#")
        XCTAssertEqual(d, .ignore, "a filter wider than every rule is not decided here")
        d = try await authz("alice", .publish, "clients/c1/status")
        XCTAssertEqual(d, .allow)
        d = try await authz("alice", .publish, "clients/c2/status")
        XCTAssertEqual(d, .ignore)
        d = try await authz("alice", .publish, "clients/c+/status", id: "c+")
        XCTAssertEqual(d, .ignore, "a client id with a wildcard never widens %c")
        d = try await authz("bob", .subscribe, "$SYS/brokers")
        XCTAssertEqual(d, .deny)
        d = try await authz("bob", .publish, "anything")
        XCTAssertEqual(d, .ignore)

        r = try await ask(.ctlRequest(command: "cmd", args: ["arg1", "arg2"]))
        XCTAssertEqual(r, .ctlReply(status: 0, text: "cmd called with: arg1 arg2", json: #"{"args":["arg1","arg2"]}"#))

        try await conn.send(.hookEvents([
            IPCHookEvent(hook: "client.connected", timestampMs: 1, fields: [IPCField("client_id", "c1"), IPCField("username", "alice")]),
            IPCHookEvent(hook: "message.publish", timestampMs: 2, fields: [IPCField("topic", "t/1"), IPCField("payload", "hello")]),
        ]))
        try await conn.roundTrip()

        process.terminate()  // SIGTERM
        let last = try await conn.waitClosed()
        XCTAssertEqual(last, [.goodbye(reason: "SIGTERM")])
        let status = try await exited.pop()
        XCTAssertEqual(status, 0)
        let log = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertTrue(log.contains("hook client.connected"), log)
        XCTAssertTrue(log.contains("hook.client_id=c1"), log)
        XCTAssertTrue(log.contains("hook.payload=hello"), log)
        await broker.close()
    }
}
