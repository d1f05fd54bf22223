import AuthBackends
import AuthRedis
import Logging
import NIOConcurrencyHelpers
import SidecarKit
import SwiftletIPC
import XCTest

/// The plugin's decisions over a fake Redis: a dictionary from the exact argument list to
/// the reply, every command recorded.
final class RedisAuthTests: XCTestCase {
    final class FakeRedis: Sendable {
        let replies: NIOLockedValueBox<[[[UInt8]]: RedisValue]> = .init([:])
        let seen: NIOLockedValueBox<[[[UInt8]]]> = .init([])
        let down = NIOLockedValueBox(false)

        func set(_ args: [String], _ v: RedisValue) { replies.withLockedValue { $0[args.map { Array($0.utf8) }] = v } }

        func execute(_ args: [[UInt8]]) throws -> RedisValue {
            seen.withLockedValue { $0.append(args) }
            if down.withLockedValue({ $0 }) { throw BackendError.unavailable("down") }
            return replies.withLockedValue { $0[args] } ?? .null
        }
    }

    let redis = FakeRedis()

    func auth(_ toml: String = "") throws -> RedisAuth {
        let s = try AuthRedisSettings(PluginConfig(string: """
            [auth_redis]
            supercmd = ["HGET", "mqtt_user:%u", "is_superuser"]
            authcmd = ["HGET", "mqtt_user:%u", "password"]
            password_hash = "plain"
            aclcmd = ["SMEMBERS", "mqtt_acl:%u"]
            subcmd = ["HGETALL", "mqtt_subs:%u"]
            \(toml)
            """))
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let redis = self.redis
        return RedisAuth(settings: s, logger: logger) { commands in try commands.map { try redis.execute($0) } }
    }

    func client(_ user: String?, id: String = "c1") -> IPCClient {
        IPCClient(clientId: id, username: user, peerAddress: "10.0.0.1", peerPort: 1, protocolLevel: 4, listener: "tcp")
    }

    func authn(_ user: String?, _ pw: String?) async throws -> AuthnAnswer {
        try await auth().authenticate(AuthnRequest(client: client(user), password: pw.map { Array($0.utf8) }))
    }

    func testAllowDenyIgnoreAndSuperuser() async throws {
        redis.set(["HGET", "mqtt_user:alice", "password"], .string(Array("pw".utf8)))
        redis.set(["HGET", "mqtt_user:alice", "is_superuser"], .string(Array("1".utf8)))
        let ok = try await authn("alice", "pw")
        XCTAssertEqual(ok.decision, .allow)
        XCTAssertTrue(ok.superuser)
        let wrong = try await authn("alice", "nope"), none = try await authn("alice", nil)
        let bob = try await authn("bob", "pw"), anonymous = try await authn(nil, "pw")
        XCTAssertEqual(wrong.decision, .deny)
        XCTAssertEqual(none.decision, .deny)
        XCTAssertEqual(bob.decision, .ignore)        // nil: not mine
        XCTAssertEqual(anonymous.decision, .ignore)  // no %u value: not even asked
        XCTAssertFalse(redis.seen.withLockedValue { $0 }.contains { $0[1] == Array("mqtt_user:".utf8) })
        redis.down.withLockedValue { $0 = true }
        let down = try await authn("alice", "pw")
        XCTAssertEqual(down.decision, .error)
    }

    func testSubscriptionsFromHGETALL() async throws {
        redis.set(["HGET", "mqtt_user:alice", "password"], .string(Array("pw".utf8)))
        redis.set(["HGETALL", "mqtt_subs:alice"], .array([
            .string(Array("a/b".utf8)), .string(Array("1".utf8)),
            .string(Array("c/#".utf8)), .string(Array("2".utf8)),
            .string(Array("bad".utf8)), .string(Array("7".utf8)),
            .string([0xFF]), .string(Array("0".utf8)),
        ]))
        let ok = try await authn("alice", "pw")
        XCTAssertEqual(ok.subscriptions, [IPCSubscription(filter: "a/b", qos: 1), IPCSubscription(filter: "c/#", qos: 2)])
        XCTAssertFalse(ok.superuser)
    }

    func testAnswersOverTheBoundsAreErrors() async throws {
        redis.set(["HGET", "mqtt_user:alice", "password"], .string(Array("pw".utf8)))
        redis.set(["HGET", "mqtt_user:big", "password"], .string([UInt8](repeating: 0x61, count: 100)))
        redis.set(["SMEMBERS", "mqtt_acl:alice"], .array((0..<5).map { .string(Array("publish t/\($0)".utf8)) }))
        redis.set(["HGETALL", "mqtt_subs:alice"], .array((0..<6).map { $0 % 2 == 0 ? .string(Array("t/\($0)".utf8)) : .string(Array("0".utf8)) }))
        let a = try auth("max_rows = 3\nmax_field_bytes = 64")
        let big = await a.authenticate(AuthnRequest(client: client("big"), password: Array("pw".utf8)))
        XCTAssertEqual(big.decision, .error)
        let acl = await a.authorize(AuthzRequest(client: client("alice"), access: .publish, topic: "t/1"))
        XCTAssertEqual(acl.decision, .error)
        let subs = await a.authenticate(AuthnRequest(client: client("alice"), password: Array("pw".utf8)))
        XCTAssertEqual(subs.subscriptions.count, 3)   // 3 pairs: within max_rows
    }

    func testPlaceholdersStayOneArgument() async throws {
        let hostile = "a b\r\n*3\r\n$3\r\nSET %c"
        _ = try await authn(hostile, "pw")
        let first = try XCTUnwrap(redis.seen.withLockedValue { $0.first })
        XCTAssertEqual(first, [Array("HGET".utf8), Array("mqtt_user:\(hostile)".utf8), Array("password".utf8)])
    }

    func testACLMembers() async throws {
        redis.set(["SMEMBERS", "mqtt_acl:alice"], .array([
            .string(Array("publish out/%u".utf8)), .string(Array("subscribe in/%c/+".utf8)),
            .string(Array("pubsub both/#".utf8)), .string(Array("garbage".utf8)), .string(Array("publish with space".utf8)),
        ]))
        let a = try auth()
        func ask(_ access: IPCAccess, _ topic: String, user: String = "alice") async -> IPCDecision {
            await a.authorize(AuthzRequest(client: client(user), access: access, topic: topic)).decision
        }
        let p1 = await ask(.publish, "out/alice"); XCTAssertEqual(p1, .allow)
        let p2 = await ask(.publish, "out/bob"); XCTAssertEqual(p2, .deny)
        let s1 = await ask(.subscribe, "in/c1/+"); XCTAssertEqual(s1, .allow)
        let s2 = await ask(.subscribe, "out/alice"); XCTAssertEqual(s2, .deny)
        let b1 = await ask(.publish, "both/x/y"); XCTAssertEqual(b1, .allow)
        let b2 = await ask(.subscribe, "both/#"); XCTAssertEqual(b2, .allow)
        let w = await ask(.publish, "with space"); XCTAssertEqual(w, .allow)
        let anon = await a.authorize(AuthzRequest(client: client(nil), access: .publish, topic: "x")).decision
        XCTAssertEqual(anon, .ignore)
        let ignoring = try auth("acl_nomatch = \"ignore\"")
        let n = await ignoring.authorize(AuthzRequest(client: client("alice"), access: .publish, topic: "nowhere")).decision
        XCTAssertEqual(n, .ignore)
    }
}
