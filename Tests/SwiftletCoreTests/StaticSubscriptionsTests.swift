import SwiftletAuth
import SwiftletConfig
import NIOCore
import NIOEmbedded
import XCTest
@testable import SwiftletCore

// Subscriptions a provider gives with its allow (sidecar protocol version 3): they travel
// in the chain's verdict, only from the provider that decided, and are cached with it.

private final class SubscribingProvider: AuthProvider, @unchecked Sendable {
    let name: String
    let order: Int
    let authenticates = true
    let authorizes = false
    let answer: ProviderAnswer
    var calls = 0

    init(_ name: String, order: Int, _ answer: ProviderAnswer) {
        self.name = name
        self.order = order
        self.answer = answer
    }

    func authenticate(_ client: ClientInfo, password: [UInt8]?, on loop: EventLoop) -> EventLoopFuture<ProviderAnswer> {
        calls += 1
        return loop.makeSucceededFuture(answer)
    }

    func authorize(_ client: ClientInfo, access: ACLAccess, topic: String, on loop: EventLoop) -> EventLoopFuture<ProviderAnswer> {
        loop.makeSucceededFuture(ProviderAnswer(.ignore))
    }
}

final class StaticSubscriptionsTests: XCTestCase {
    let subs = [StaticSubscription(filter: "inbox/alice", qos: 1), StaticSubscription(filter: "news/#", qos: 0)]
    let alice = ClientInfo(clientId: "c-alice", username: "alice", peerAddress: "10.1.2.3")

    func testTheDecidingAllowCarriesItsSubscriptionsAndTheCacheKeepsThem() throws {
        let loop = EmbeddedEventLoop()
        defer { try? loop.syncShutdownGracefully() }
        let chain = AuthChain(config: AuthConfig(), allowAnonymous: false, logger: quietLogger())
        // An ignoring provider's subscriptions are not used; the allowing one's are.
        chain.add(SubscribingProvider("first", order: 10, ProviderAnswer(.ignore, subscriptions: [StaticSubscription(filter: "x", qos: 2)])))
        let redis = SubscribingProvider("redis", order: 20, ProviderAnswer(.allow(superuser: false), subscriptions: subs))
        chain.add(redis)
        let first = try settled(chain.authenticate(alice, password: Array("pw".utf8), on: loop), loop)
        XCTAssertTrue(first.allowed)
        XCTAssertEqual(first.subscriptions, subs)
        let cached = try settled(chain.authenticate(alice, password: Array("pw".utf8), on: loop), loop)
        XCTAssertEqual(redis.calls, 1, "answered from the cache")
        XCTAssertEqual(cached.subscriptions, subs)
    }

    func testADenyCarriesNone() throws {
        let loop = EmbeddedEventLoop()
        defer { try? loop.syncShutdownGracefully() }
        let chain = AuthChain(config: AuthConfig(), allowAnonymous: false, logger: quietLogger())
        chain.add(SubscribingProvider("redis", order: 20, ProviderAnswer(.deny(reason: "no"), subscriptions: subs)))
        let r = try settled(chain.authenticate(alice, password: Array("pw".utf8), on: loop), loop)
        XCTAssertFalse(r.allowed)
        XCTAssertEqual(r.subscriptions, [])
    }
}
