import Foundation
import NIOCore
import NIOEmbedded
import XCTest
@testable import SwiftletCore

// The ctl socket's wire format and the command registry, without a socket.

final class ControlWireTests: XCTestCase {
    private func parse(_ s: String) -> Result<ControlWire.Request, ControlWireError> {
        ControlWire.parseRequest(Array(s.utf8))
    }

    func testParsesCommandAndArgs() throws {
        XCTAssertEqual(try parse(#"{"command": "clients", "args": ["list"]}"#).get(), .init(command: "clients", args: ["list"]))
        XCTAssertEqual(try parse(#"{"command":"status"}"#).get(), .init(command: "status", args: []))
        XCTAssertEqual(try parse(#"{"command":"status","args":null}"#).get(), .init(command: "status", args: []))
        XCTAssertEqual(try parse(#"{"command":"users","args":["add","b\u00f6b","p w\"d"]}"#).get().args, ["add", "böb", "p w\"d"])
    }

    func testRejectsGarbage() {
        for bad in ["", "garbage", "[1,2]", "42", #"{"args":["x"]}"#, #"{"command":""}"#, #"{"command":5}"#,
                    #"{"command":"x","args":"list"}"#, #"{"command":"x","args":[1]}"#, #"{"command":"x","args":[null]}"#,
                    "{\"command\":\"x\"", "\u{FFFD}"] {
            guard case .failure = parse(bad) else { return XCTFail("accepted \(bad.debugDescription)") }
        }
        guard case .failure = ControlWire.parseRequest([0xff, 0xfe, 0x00]) else { return XCTFail("accepted invalid UTF-8") }
    }

    private func decode(_ line: String) throws -> [String: Any] {
        XCTAssertTrue(line.hasSuffix("\n"))
        XCTAssertEqual(line.filter { $0 == "\n" }.count, 1, "a reply is exactly one line")
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
    }

    func testReplyIsOneLineWithEmbeddedJSON() throws {
        let r = ControlReply(status: 0, text: "a\nb \"table\"", json: "{\n  \"n\": [1, true, null, \"x/y\"]\n}")
        let line = ControlWire.encodeReply(r)
        let o = try decode(line)
        XCTAssertEqual(o["status"] as? Int, 0)
        XCTAssertEqual(o["text"] as? String, "a\nb \"table\"")
        let json = try XCTUnwrap(o["json"] as? [String: Any])
        let n = try XCTUnwrap(json["n"] as? [Any])
        XCTAssertEqual(n.count, 4)
        XCTAssertEqual(n[3] as? String, "x/y")
        XCTAssertTrue(line.contains("true"), line)
    }

    func testReplyWithoutJSONIsNull() throws {
        let o = try decode(ControlWire.encodeReply(ControlReply(status: 2, text: "failed")))
        XCTAssertTrue(o["json"] is NSNull)
        XCTAssertEqual(o["status"] as? Int, 2)
    }

    func testBadJSONFromAHandlerIsSentAsAString() throws {
        let o = try decode(ControlWire.encodeReply(ControlReply(text: "x", json: "{not json\n")))
        XCTAssertEqual(o["json"] as? String, "{not json\n")
    }

    func testRequestRoundTrip() throws {
        let req = ControlWire.Request(command: "subscriptions", args: ["add", "c1", "a/+/b", "1"])
        let line = ControlWire.encodeRequest(req)
        XCTAssertTrue(line.hasSuffix("\n"))
        XCTAssertEqual(try ControlWire.parseRequest(Array(line.utf8.dropLast())).get(), req)
    }
}

final class ControlRegistryTests: XCTestCase {
    let loop = EmbeddedEventLoop()

    private func run(_ r: ControlRegistry, _ command: String, _ args: [String] = []) throws -> ControlReply {
        let f = r.dispatch(command, args: args, on: loop)
        loop.run()
        return try f.wait()
    }

    func testDispatchesToTheRegisteredHandler() throws {
        let r = ControlRegistry()
        XCTAssertTrue(r.register("echo", usage: "echo <words>", owner: "test") { args, loop in
            loop.makeSucceededFuture(ControlReply(text: args.joined(separator: " ")))
        })
        XCTAssertEqual(try run(r, "echo", ["a", "b"]), ControlReply(text: "a b"))
    }

    func testUnknownCommandIsAUsageError() throws {
        let reply = try run(ControlRegistry(), "nope")
        XCTAssertEqual(reply.status, 1)
        XCTAssertTrue(reply.text.contains("unknown command"), reply.text)
    }

    func testAFailedHandlerIsStatus2() throws {
        struct Boom: Error {}
        let r = ControlRegistry()
        r.register("boom", usage: "boom", owner: "test") { _, loop in loop.makeFailedFuture(Boom()) }
        XCTAssertEqual(try run(r, "boom").status, 2)
    }

    func testOwnershipAndUnregister() throws {
        let r = ControlRegistry()
        let h: ControlRegistry.Handler = { _, loop in loop.makeSucceededFuture(ControlReply(text: "a")) }
        XCTAssertTrue(r.register("cmd", usage: "cmd", owner: "plugin-a", handler: h))
        XCTAssertFalse(r.register("cmd", usage: "cmd", owner: "plugin-b", handler: h), "another owner cannot take it")
        XCTAssertTrue(r.register("cmd", usage: "cmd x", owner: "plugin-a", handler: h), "the owner may replace it")
        XCTAssertTrue(r.register("other", usage: "other", owner: "plugin-a", handler: h))
        XCTAssertTrue(r.register("third", usage: "third", owner: "plugin-b", handler: h))
        XCTAssertEqual(r.commands.map { $0.command }, ["cmd", "other", "third"])
        XCTAssertEqual(r.commands.first?.usage, "cmd x")

        r.unregister(command: "third", owner: "plugin-a")
        XCTAssertEqual(r.commands.count, 3, "only the owner unregisters a command")
        r.unregister(command: "third", owner: "plugin-b")
        XCTAssertEqual(r.commands.map { $0.command }, ["cmd", "other"])
        r.unregister(owner: "plugin-a")
        XCTAssertTrue(r.commands.isEmpty)
        XCTAssertTrue(r.register("cmd", usage: "cmd", owner: "plugin-b", handler: h), "free again after unregister")
        XCTAssertEqual(try run(r, "cmd").text, "a")
    }

    func testTextTableAlignsColumns() {
        let t = TextTable.render(["A", "LONG"], [["xx", "1"], ["y", "22"]])
        XCTAssertEqual(t, "A   LONG\nxx  1\ny   22")
        XCTAssertEqual(TextTable.cell("a\nb"), "a.b")
    }
}
