import NIOCore
import SidecarKit
import SwiftletIPC
import XCTest

/// Subscriptions in an authentication answer (SPEC 8): AUTHN_REPLY_SUBS in version 3, the
/// plain AUTHN_REPLY (subscriptions dropped) when the broker chose version 1 or 2.
/// (An extension of SidecarClientTests, for its fake-broker helpers.)
private let subs = [IPCSubscription(filter: "inbox/alice", qos: 1), IPCSubscription(filter: "news/#", qos: 0)]

extension SidecarClientTests {
    private func subscribingHandlers() -> SidecarHandlers {
        var h = SidecarHandlers()
        h.onAuthenticate { r in
            switch r.client.username {
            case "alice": return .allow(subscriptions: subs)
            case "bob": return .allow()
            default: return .deny("who?")
            }
        }
        return h
    }

    private func authnAnswers(brokerVersion: UInt16) async throws -> [UInt32: IPCMessage] {
        let broker = try await FakeBroker()
        let sidecar = try makeSidecar(broker.path, subscribingHandlers())
        var got: [UInt32: IPCMessage] = [:]
        try await running(sidecar) {
            let conn = try await broker.accept()
            let (hello, _) = try await conn.handshake(version: brokerVersion)
            XCTAssertEqual(hello.helloMaxVersion, 3)
            var bob = testClient
            bob.username = "bob"
            var eve = testClient
            eve.username = "eve"
            try await conn.send(.authnRequest(client: testClient, password: nil), id: 11)
            try await conn.send(.authnRequest(client: bob, password: nil), id: 12)
            try await conn.send(.authnRequest(client: eve, password: nil), id: 13)
            while got.count < 3 {
                let (m, id) = try await conn.receive()
                got[id] = m
            }
        }
        await broker.close()
        return got
    }

    func testAuthnVersion3CarriesTheSubscriptions() async throws {
        let got = try await authnAnswers(brokerVersion: 3)
        XCTAssertEqual(got[11], .authnReplySubs(decision: .allow, superuser: false, ttlMs: 0, reason: "", subscriptions: subs))
        XCTAssertEqual(got[12], .authnReply(decision: .allow, superuser: false, ttlMs: 0, reason: ""))
        XCTAssertEqual(got[13], .authnReply(decision: .deny, superuser: false, ttlMs: 0, reason: "who?"))
    }

    func testAuthnVersions1And2GetThePlainReply() async throws {
        for v: UInt16 in [1, 2] {
            let got = try await authnAnswers(brokerVersion: v)
            XCTAssertEqual(got[11], .authnReply(decision: .allow, superuser: false, ttlMs: 0, reason: ""), "version \(v)")
            XCTAssertEqual(got[13], .authnReply(decision: .deny, superuser: false, ttlMs: 0, reason: "who?"), "version \(v)")
        }
    }
}

private extension IPCMessage {
    var helloMaxVersion: UInt16? {
        if case .hello(_, let maxV, _, _, _) = self { return maxV }
        return nil
    }
}
