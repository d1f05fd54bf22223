import AuthBackends
import AuthRedis
import SidecarKit
import XCTest

/// `[auth_redis]` as emqttd_auth_redis users write it, and what is refused.
final class AuthRedisSettingsTests: XCTestCase {
    func settings(_ toml: String) throws -> AuthRedisSettings {
        try AuthRedisSettings(PluginConfig(string: toml, file: "auth_redis.toml"))
    }

    func testTheSeedsOptions() throws {
        let s = try settings("""
            [auth_redis]
            supercmd = ["HGET", "mqtt_user:%u", "is_superuser"]
            authcmd = ["HGET", "mqtt_user:%u", "password"]
            password_hash = "sha256"
            aclcmd = ["SMEMBERS", "mqtt_acl:%u"]
            acl_nomatch = "deny"
            subcmd = ["HGETALL", "mqtt_subs:%u"]
            [auth_redis.redis_pool]
            pool_size = 8
            auto_reconnect = 2
            host = "127.0.0.1"
            port = 6379
            database = 0
            password = ""
            """)
        XCTAssertEqual(s.authcmd?.source, ["HGET", "mqtt_user:%u", "password"])
        XCTAssertEqual(s.subcmd?.description, "HGETALL mqtt_subs:%u")
        XCTAssertEqual(s.passwordHash, PasswordCheck(.digest(.sha256, salt: .none)))
        XCTAssertEqual(s.aclNomatch, .deny)
        XCTAssertEqual(s.poolSize, 8)
        XCTAssertEqual(s.autoReconnect, 2)
        XCTAssertEqual(s.endpoint.address, .tcp(host: "127.0.0.1", port: 6379))
        XCTAssertNil(s.endpoint.password)
    }

    func testSaltFromHMGETAndUnixSocket() throws {
        let s = try settings("""
            [auth_redis]
            authcmd = ["HMGET", "mqtt_user:%u", "password", "salt"]
            password_hash = ["sha256", "salt"]
            [auth_redis.redis_pool]
            socket = "/run/redis.sock"
            database = 2
            password = "pw"
            auto_reconnect = true
            keep_alive = false
            """)
        XCTAssertNil(s.keepAlive)
        XCTAssertEqual(s.autoReconnect, 2)
        XCTAssertEqual(s.passwordHash, PasswordCheck(.digest(.sha256, salt: .suffix)))
        XCTAssertEqual(s.endpoint.address, .unix(path: "/run/redis.sock"))
        XCTAssertEqual(s.endpoint.database, 2)
        XCTAssertEqual(s.endpoint.password, "pw")
    }

    func testRefusals() {
        let cases: [(String, String)] = [
            ("[auth_redis]\n", "authcmd"),
            ("[auth_redis]\nauthcmd = []\n", "non-empty"),
            ("[auth_redis]\nauthcmd = [\"HGET\", \"mqtt_user:%P\", \"password\"]\n", "%P"),
            ("[auth_redis]\nauthcmd = [\"%u\"]\n", "command name"),
            ("[auth_redis]\naclcmd = [\"SMEMBERS\", \"a:%u\"]\nsubcmd = [\"HGETALL\", \"s:%u\"]\n", "needs authcmd"),
            ("[auth_redis]\nauthcmd = [\"HGET\", \"u:%u\", \"password\"]\npassword_hash = [\"salt\", \"sha256\"]\n", "needs the salt"),
            ("[auth_redis]\nauthcmd = [\"HGET\", \"u:%u\", \"p\"]\npassword_hash = \"rot13\"\n", "password_hash"),
            ("[auth_redis]\nauthcmd = [\"HGET\", \"u:%u\", \"p\"]\nacl_nomatch = \"maybe\"\n", "acl_nomatch"),
            ("[auth_redis]\nauthcmd = [\"HGET\", \"u:%u\", \"p\"]\nauthcmdd = [\"x\"]\n", "unknown key"),
            ("[auth_redis]\nauthcmd = [\"HGET\", \"u:%u\", \"p\"]\n[auth_redis.redis_pool]\nssl = true\n", "TLS"),
            ("[auth_redis]\nauthcmd = [\"HGET\", \"u:%u\", \"p\"]\n[auth_redis.redis_pool]\nsocket = \"/s\"\nport = 1\n", "socket"),
            ("[auth_redis]\nauthcmd = [\"HGET\", \"u:%u\", \"p\"]\n[auth_redis.redis_pool]\npool_size = 0\n", "pool_size"),
            ("[auth_redis]\nauthcmd = [\"HGET\", \"u:%u\", \"p\"]\n[auth_redis.redis_pool]\nauto_reconnect = false\n", "always reconnects"),
            ("[auth_redis]\nauthcmd = [\"HGET\", \"u:%u\", \"p\"]\n[auth_redis.redis_pool]\nquery_timeout = 1\n", "unknown key"),
        ]
        for (toml, expected) in cases {
            XCTAssertThrowsError(try settings(toml), toml) { XCTAssertTrue("\($0)".contains(expected), "\($0) for \(toml)") }
        }
    }
}
