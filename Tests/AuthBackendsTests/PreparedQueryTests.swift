import AuthBackends
import XCTest

final class PreparedQueryTests: XCTestCase {
    let seedACL = "select allow, ipaddr, username, clientid, access, topic from mqtt_acl where ipaddr = '%a' or username = '%u' or username = '$all' or clientid = '%c'"

    func testSeedQueriesBindEveryPlaceholder() throws {
        let auth = try PreparedQuery("select password from mqtt_user where username = '%u' limit 1", style: .questionMark)
        XCTAssertEqual(auth.sql, "select password from mqtt_user where username = ? limit 1")
        XCTAssertEqual(auth.parameters, [.username])
        let acl = try PreparedQuery(seedACL, style: .dollar)
        XCTAssertEqual(acl.sql, "select allow, ipaddr, username, clientid, access, topic from mqtt_acl where ipaddr = $1 or username = $2 or username = '$all' or clientid = $3")
        XCTAssertEqual(acl.parameters, [.ipAddress, .username, .clientId])
        let my = try PreparedQuery(seedACL, style: .questionMark)
        XCTAssertEqual(my.parameters, [.ipAddress, .username, .clientId])
        XCTAssertFalse(my.sql.contains("%"))
    }

    func testBareAndDoubleQuotedPlaceholders() throws {
        let q = try PreparedQuery("select x from t where a = %u and b = \"%c\" and c = %C and d = '%d' and e = %P", style: .questionMark)
        XCTAssertEqual(q.sql, "select x from t where a = ? and b = ? and c = ? and d = ? and e = ?")
        XCTAssertEqual(q.parameters, [.username, .clientId, .certCommonName, .certSubject, .password])
        // In PostgreSQL "..." is a name, copied as is.
        let pg = try PreparedQuery("select \"password\" from t where u = %u", style: .dollar)
        XCTAssertEqual(pg.sql, "select \"password\" from t where u = $1")
    }

    func testLiteralsCommentsAndPercentAreKept() throws {
        let q = try PreparedQuery("select 'it''s', 'a\\'b', 10 % 3, '%' from t -- %u here is a comment\nwhere u = '%u' /* %c */", style: .questionMark)
        XCTAssertEqual(q.parameters, [.username])
        XCTAssertEqual(q.sql, "select 'it''s', 'a\\'b', 10 % 3, '%' from t -- %u here is a comment\nwhere u = ? /* %c */")
    }

    func testRefused() {
        for bad in ["select 1 from t where u = 'user:%u'", "select 1 from t where u like '%u%'",
                    "select 1 from t where u = ?", "select 1 from t where u = 'x"] {
            XCTAssertThrowsError(try PreparedQuery(bad, style: .questionMark), bad)
        }
        XCTAssertThrowsError(try PreparedQuery("select 1 from t where u = $1", style: .dollar))
        XCTAssertNoThrow(try PreparedQuery("select 1 from t where u = ?", style: .dollar), "? is an operator in PostgreSQL")
    }

    func testTemplateRender() {
        let t = PlaceholderTemplate("mqtt_user:%u %x %c%")
        XCTAssertEqual(t.placeholders, [.username, .clientId])
        let v = PlaceholderValues(username: "a b", clientId: "c1", ipAddress: "1.2.3.4")
        XCTAssertEqual(String(decoding: t.render(v), as: UTF8.self), "mqtt_user:a b %x c1%")
        XCTAssertEqual(v[.username], Array("a b".utf8))
        XCTAssertNil(PlaceholderValues(username: nil, clientId: "c", ipAddress: "").self[.username])
    }
}
