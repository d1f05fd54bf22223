import AuthLDAP
import XCTest

/// RFC 4514 (DN attribute values) and RFC 4515 (filter assertion values) escaping.
final class LDAPEscapeTests: XCTestCase {
    func testDNValuePlainNamesStayAsTheyAre() {
        XCTAssertEqual(LDAPEscape.dnValue("alice"), "alice")
        XCTAssertEqual(LDAPEscape.dnValue("ünïcødé-日本-😀"), "ünïcødé-日本-😀")
        XCTAssertEqual(LDAPEscape.dnValue("star*(x)"), "star*(x)")       // filter syntax means nothing in a DN
        XCTAssertEqual(LDAPEscape.dnValue("a#b c"), "a#b c")             // # and space inside the value
        XCTAssertEqual(LDAPEscape.dnValue(""), "")
    }

    func testDNValueSpecialsGetABackslash() {
        for c in ["\"", "+", ",", ";", "<", ">", "\\", "="] {
            XCTAssertEqual(LDAPEscape.dnValue("a\(c)b"), "a\\\(c)b", c)
        }
        // RFC 4514 section 4's example: CN=James \"Jim\" Smith\, III
        XCTAssertEqual(LDAPEscape.dnValue("James \"Jim\" Smith, III"), "James \\\"Jim\\\" Smith\\, III")
        // An attempt to end the RDN and add components stays one value.
        XCTAssertEqual(LDAPEscape.dnValue("x,ou=Admins,dc=example"), "x\\,ou\\=Admins\\,dc\\=example")
        XCTAssertEqual(LDAPEscape.dnValue("x+cn=admin"), "x\\+cn\\=admin")
    }

    func testDNValueLeadingHashAndSpacesAndTrailingSpace() {
        // A leading # would make the rest a BER-encoded value (RFC 4514 2.4).
        XCTAssertEqual(LDAPEscape.dnValue("#0405616c696365"), "\\#0405616c696365")
        XCTAssertEqual(LDAPEscape.dnValue(" lead"), "\\ lead")
        XCTAssertEqual(LDAPEscape.dnValue("trail "), "trail\\ ")
        XCTAssertEqual(LDAPEscape.dnValue(" "), "\\ ")
        XCTAssertEqual(LDAPEscape.dnValue("  "), "\\ \\ ")
        XCTAssertEqual(LDAPEscape.dnValue("a b"), "a b")
    }

    func testDNValueNULAndControlCharactersAreHexPairs() {
        XCTAssertEqual(LDAPEscape.dnValue("a\u{0}b"), "a\\00b")
        // RFC 4514 section 4's example: CN=Before\0DAfter (hex case is not significant).
        XCTAssertEqual(LDAPEscape.dnValue("Before\rAfter"), "Before\\0dAfter")
        XCTAssertEqual(LDAPEscape.dnValue("x\n\u{7f}"), "x\\0a\\7f")
    }

    func testDNValueOnBytes() {
        XCTAssertEqual(LDAPEscape.dnValue(Array("#,\u{0}".utf8)), Array("\\#\\,\\00".utf8))
    }

    func testFilterValueEscapesTheFiveCharacters() {
        XCTAssertEqual(LDAPEscape.filterValue("alice"), "alice")
        XCTAssertEqual(LDAPEscape.filterValue("*"), "\\2a")
        XCTAssertEqual(LDAPEscape.filterValue("("), "\\28")
        XCTAssertEqual(LDAPEscape.filterValue(")"), "\\29")
        XCTAssertEqual(LDAPEscape.filterValue("\\"), "\\5c")
        XCTAssertEqual(LDAPEscape.filterValue("a\u{0}b"), "a\\00b")
        // The classic injection stays one assertion value.
        XCTAssertEqual(LDAPEscape.filterValue("*)(uid=*"), "\\2a\\29\\28uid=\\2a")
        XCTAssertEqual(LDAPEscape.filterValue("x)(|(objectClass=*)"), "x\\29\\28|\\28objectClass=\\2a\\29")
        // RFC 4515 section 4's examples: (o=Parens R Us \28for all your parenthetical needs\29)
        XCTAssertEqual(LDAPEscape.filterValue("Parens R Us (for all your parenthetical needs)"),
                       "Parens R Us \\28for all your parenthetical needs\\29")
        XCTAssertEqual(LDAPEscape.filterValue("C:\\MyFile"), "C:\\5cMyFile")
    }

    func testFilterValueLeavesDNSyntaxAndUTF8Alone() {
        XCTAssertEqual(LDAPEscape.filterValue("a,b=c+d\"#"), "a,b=c+d\"#")
        XCTAssertEqual(LDAPEscape.filterValue("Lučić"), "Lučić")
    }

    /// Every output is valid UTF-8 and free of the characters each syntax reserves.
    func testNoReservedCharacterSurvivesAnyByte() {
        for b in UInt8(0)...UInt8(0x7F) {
            let value = [UInt8(ascii: "x"), b, UInt8(ascii: "y")]
            let f = LDAPEscape.filterValue(value)
            XCTAssertFalse(f.contains(0) || f.contains(UInt8(ascii: "*")) || f.contains(UInt8(ascii: "(")) || f.contains(UInt8(ascii: ")")), "\(b)")
            let d = LDAPEscape.dnValue(value)
            XCTAssertFalse(d.contains(0), "\(b)")
            // every special is preceded by a backslash
            for (i, c) in d.enumerated() where [0x2C, 0x2B, 0x22, 0x3B, 0x3C, 0x3E, 0x3D].contains(c) {
                XCTAssertEqual(d[i - 1], 0x5C, "\(b)")
            }
        }
    }
}
