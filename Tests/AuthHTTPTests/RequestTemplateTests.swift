import AuthHTTP
import Foundation
import SidecarKit
import XCTest

/// Params parsing, request rendering, the settings file and the status mapping.
final class RequestTemplateTests: XCTestCase {
    let values = PlaceholderValues(username: "a b&c", clientId: "c=1", ipAddress: "127.0.0.1", password: Array("p%w".utf8),
                                   topic: "x/#", access: .subscribe)

    func testParseParamsEmqttdStyle() throws {
        XCTAssertEqual(try RequestTemplate.parseParams("username=%u,password=%P"),
                       [.init("username", "%u"), .init("password", "%P")])
        XCTAssertEqual(try RequestTemplate.parseParams(" a = %u , b=x=y ,c="), [.init("a", "%u"), .init("b", "x=y"), .init("c", "")])
        XCTAssertEqual(try RequestTemplate.parseParams(""), [])
        XCTAssertThrowsError(try RequestTemplate.parseParams("username"))
        XCTAssertThrowsError(try RequestTemplate.parseParams("=%u"))
        XCTAssertThrowsError(try RequestTemplate.parseParams("a=1,,b=2"))
    }

    func testGetPutsEncodedParamsInTheQuery() {
        let t = RequestTemplate(method: .get, url: "http://h/auth", params: [.init("username", "%u"), .init("clientid", "%c"), .init("password", "%P")])
        let r = t.render(values)
        XCTAssertEqual(r.url, "http://h/auth?username=a%20b%26c&clientid=c%3D1&password=p%25w")
        XCTAssertNil(r.body)
        XCTAssertEqual(r.redactedURL, "http://h/auth")
        let t2 = RequestTemplate(method: .get, url: "http://h/acl?x=1", params: [.init("topic", "%t"), .init("access", "%A")])
        XCTAssertEqual(t2.render(values).url, "http://h/acl?x=1&topic=x%2F%23&access=1")
    }

    func testPostFormAndJSON() {
        var t = RequestTemplate(method: .post, url: "http://h/auth", params: [.init("username", "%u"), .init("ip", "%a")],
                                headers: [.init("X-Key", "k")])
        var r = t.render(values)
        XCTAssertEqual(r.url, "http://h/auth")
        XCTAssertEqual(r.body.map { String(decoding: $0, as: UTF8.self) }, "username=a%20b%26c&ip=127.0.0.1")
        XCTAssertEqual(r.headers, ["X-Key: k", "Content-Type: application/x-www-form-urlencoded"])
        t.encoding = .json
        r = t.render(values)
        XCTAssertEqual(r.body.map { String(decoding: $0, as: UTF8.self) }, #"{"username":"a b&c","ip":"127.0.0.1"}"#)
        XCTAssertEqual(r.headers.last, "Content-Type: application/json")
    }

    func testPlaceholdersInTheURLAreEncoded() {
        let t = RequestTemplate(method: .get, url: "http://h/users/%u/acl")
        XCTAssertEqual(t.render(values).url, "http://h/users/a%20b%26c/acl")
    }

    func testVerdicts() {
        XCTAssertEqual(Verdict.of(status: 200, body: Array("ok".utf8)), .allow)
        XCTAssertEqual(Verdict.of(status: 200, body: []), .allow)
        XCTAssertEqual(Verdict.of(status: 200, body: Array("ignore\n".utf8)), .ignore)
        XCTAssertEqual(Verdict.of(status: 404, body: Array("ignore".utf8)), .ignore)
        XCTAssertEqual(Verdict.of(status: 401, body: []), .deny(status: 401))
        XCTAssertEqual(Verdict.of(status: 403, body: Array("no".utf8)), .deny(status: 403))
        XCTAssertEqual(Verdict.of(status: 500, body: Array("ignore".utf8)), .error("HTTP 500"))
        XCTAssertEqual(Verdict.of(status: 503, body: []), .error("HTTP 503"))
        XCTAssertEqual(Verdict.of(status: 302, body: []), .error("unexpected HTTP status 302"))
        XCTAssertEqual(Verdict.of(status: 204, body: []), .error("unexpected HTTP status 204"))
    }

    func testSettingsFromTOML() throws {
        let config = try PluginConfig(string: """
            [sidecar]
            command = "x"
            [auth_http]
            timeout = 2
            admin_listen = "127.0.0.1:0"
            [auth_http.tls]
            cafile = "/ca.pem"
            verify = false
            [auth_http.auth_req]
            method = "get"
            url = "http://127.0.0.1:8080/mqtt/auth"
            params = "clientid=%c,username=%u,password=%P"
            [auth_http.super_req]
            url = "https://127.0.0.1:8080/mqtt/superuser"
            params = { username = "%u", clientid = "%c" }
            content_type = "json"
            timeout = 0.5
            headers = { Authorization = "Bearer t" }
            """, file: "auth_http.toml")
        let s = try AuthHTTPSettings(config)
        XCTAssertEqual(s.authReq?.method, .get)
        XCTAssertEqual(s.authReq?.params.map(\.key), ["clientid", "username", "password"])
        XCTAssertEqual(s.authReq?.timeout, 2)
        XCTAssertEqual(s.authReq?.tls, TLSOptions(caFile: "/ca.pem", verify: false))
        XCTAssertEqual(s.superReq?.method, .post)
        XCTAssertEqual(s.superReq?.encoding, .json)
        XCTAssertEqual(s.superReq?.timeout, 0.5)
        XCTAssertEqual(Set(s.superReq?.params.map(\.key) ?? []), ["username", "clientid"])
        XCTAssertEqual(s.superReq?.headers, [.init("Authorization", "Bearer t")])
        XCTAssertNil(s.aclReq)
        XCTAssertEqual(s.adminListen, "127.0.0.1:0")
    }

    func testShippedPluginFileParses() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let s = try AuthHTTPSettings(PluginConfig.load(path: root.appendingPathComponent("etc/plugins/auth_http.toml").path))
        XCTAssertEqual(s.authReq?.params.map(\.key), ["clientid", "username", "password"])
        XCTAssertEqual(s.aclReq?.method, .get)
        XCTAssertNotNil(s.superReq)
        XCTAssertNil(s.adminListen)
        XCTAssertEqual(s.authReq?.timeout, AuthHTTPSettings.defaultTimeout)
        XCTAssertEqual(AuthHTTPSettings.defaultTimeout, 4)
    }

    func testSettingsErrorsNameTheKey() {
        func error(_ body: String) -> String {
            do {
                _ = try AuthHTTPSettings(PluginConfig(string: "[auth_http]\n" + body, file: "f.toml"))
                return "no error"
            } catch {
                return "\(error)"
            }
        }
        XCTAssertTrue(error("").contains("auth_http.auth_req"))
        XCTAssertTrue(error("[auth_http.auth_req]\nurl = \"ftp://x\"").contains("auth_http.auth_req.url"))
        XCTAssertTrue(error("[auth_http.auth_req]\nurl = \"http://x\"\nmethod = \"put\"").contains("auth_http.auth_req.method"))
        XCTAssertTrue(error("[auth_http.auth_req]\nurl = \"http://x\"\nparams = \"user\"").contains("auth_http.auth_req.params"))
        XCTAssertTrue(error("[auth_http.auth_req]\nurl = \"http://x\"\nparms = \"u=%u\"").contains("auth_http.auth_req.parms"))
        XCTAssertTrue(error("[auth_http.super_req]\nurl = \"http://x\"").contains("auth_http.super_req"))
        XCTAssertTrue(error("admin_listen = \"0.0.0.0:80\"\n[auth_http.auth_req]\nurl = \"http://x\"").contains("auth_http.admin_listen"))
    }

    func testAdminQuery() {
        XCTAssertEqual(AdminQuery.scopes("username=a%26b+c"), [.username("a&b c")])
        XCTAssertEqual(AdminQuery.scopes("clientid=x&username=y"), [.clientId("x"), .username("y")])
        XCTAssertEqual(AdminQuery.scopes("all=1"), [.all])
        XCTAssertEqual(AdminQuery.scopes("all"), [.all])
        XCTAssertNil(AdminQuery.scopes(""))
        XCTAssertNil(AdminQuery.scopes("all=0&x=1"))
        XCTAssertEqual(AdminQuery.formDecode("%zz%4"), "%zz%4")
    }
}
