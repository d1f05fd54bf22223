import Dispatch
import Foundation
import NIOCore
import NIOPosix
import SwiftletIPC
import XCTest

struct TestTimeout: Error, CustomStringConvertible {
    var what: String
    var description: String { "timed out waiting for \(what)" }
}

/// A queue whose `pop` waits, with a timeout, so that no test can hang.
final class Inbox<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [T] = []
    private var waiter: (id: Int, continuation: CheckedContinuation<T, Error>)?
    private var nextId = 0
    let what: String

    init(_ what: String) { self.what = what }

    func push(_ item: T) {
        lock.lock()
        if let w = waiter {
            waiter = nil
            lock.unlock()
            w.continuation.resume(returning: item)
        } else {
            items.append(item)
            lock.unlock()
        }
    }

    func pop(timeout: Double = 5) async throws -> T {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, Error>) in
            lock.lock()
            if !items.isEmpty {
                let item = items.removeFirst()
                lock.unlock()
                return c.resume(returning: item)
            }
            nextId += 1
            let id = nextId
            waiter = (id, c)
            lock.unlock()
            DispatchQueue.global().asyncAfter(deadline: .now() + timeout) {
                self.lock.lock()
                guard let w = self.waiter, w.id == id else { return self.lock.unlock() }
                self.waiter = nil
                self.lock.unlock()
                w.continuation.resume(throwing: TestTimeout(what: self.what))
            }
        }
    }

    var count: Int {
        lock.lock()
        defer { lock.unlock() }
        return items.count
    }
}

/// The broker's end of one sidecar connection in a test.
final class FakeConnection: @unchecked Sendable {
    enum Event {
        case frame(IPCFrame)
        case closed
    }

    let channel: Channel
    let events = Inbox<Event>("a frame from the sidecar")

    init(channel: Channel) { self.channel = channel }

    /// The next frame; fails when the sidecar closed instead.
    func next(timeout: Double = 5) async throws -> IPCFrame {
        switch try await events.pop(timeout: timeout) {
        case .frame(let f): return f
        case .closed: throw TestTimeout(what: "a frame (the sidecar closed the connection)")
        }
    }

    func receive(timeout: Double = 5) async throws -> (IPCMessage, UInt32) {
        let f = try await next(timeout: timeout)
        return (try IPCMessage.decode(f), f.requestId)
    }

    /// Waits for the sidecar to close, skipping frames; returns the frames skipped.
    @discardableResult
    func waitClosed(timeout: Double = 5) async throws -> [IPCMessage] {
        var seen: [IPCMessage] = []
        while true {
            switch try await events.pop(timeout: timeout) {
            case .frame(let f): seen.append(try IPCMessage.decode(f))
            case .closed: return seen
            }
        }
    }

    func send(_ message: IPCMessage, id: UInt32 = 0) async throws {
        try await channel.writeAndFlush(message.frame(requestId: id).encoded).get()
    }

    func sendRaw(_ bytes: [UInt8]) async throws {
        try await channel.writeAndFlush(ByteBuffer(bytes: bytes)).get()
    }

    /// HELLO -> WELCOME, REGISTER -> REGISTERED (accepting every hook). Returns HELLO and the capabilities.
    @discardableResult
    func handshake(maxFrame: UInt32 = 1 << 20, version: UInt16 = 1, file: StaticString = #filePath, line: UInt = #line)
        async throws -> (hello: IPCMessage, capabilities: [IPCCapability]) {
        let (hello, helloId) = try await receive()
        guard case .hello = hello else { XCTFail("expected HELLO, got \(hello)", file: file, line: line); throw TestTimeout(what: "HELLO") }
        XCTAssertNotEqual(helloId, 0, file: file, line: line)
        try await send(.welcome(version: version, brokerVersion: "test", node: "node1", maxFrame: maxFrame), id: helloId)
        let (register, registerId) = try await receive()
        guard case .register(let caps) = register else {
            XCTFail("expected REGISTER, got \(register)", file: file, line: line)
            throw TestTimeout(what: "REGISTER")
        }
        let hooks = caps.compactMap { c -> String? in if case .hook(let n, _, _) = c { return n } else { return nil } }
        try await send(.registered(hooks: Array(Set(hooks)).sorted()), id: registerId)
        return (hello, caps)
    }

    /// PING -> PONG: everything the sidecar received before has been processed.
    func roundTrip(id: UInt32 = 9_999) async throws {
        try await send(.ping, id: id)
        let (m, rid) = try await receive()
        XCTAssertEqual(m, .pong)
        XCTAssertEqual(rid, id)
    }
}

private final class Collector: ChannelInboundHandler {
    typealias InboundIn = IPCFrame
    let connection: FakeConnection
    init(_ c: FakeConnection) { connection = c }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        connection.events.push(.frame(unwrapInboundIn(data)))
    }
    func channelInactive(context: ChannelHandlerContext) {
        connection.events.push(.closed)
        context.fireChannelInactive()
    }
    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}

/// A broker that listens on a Unix socket and hands each sidecar connection to the test.
final class FakeBroker: @unchecked Sendable {
    let path: String
    let server: Channel
    let connections = Inbox<FakeConnection>("a sidecar connection")

    static func temporaryPath() -> String {
        "/tmp/sk-\(UUID().uuidString.prefix(8)).sock"
    }

    init(path: String = FakeBroker.temporaryPath()) async throws {
        self.path = path
        let inbox = connections
        server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { ch in
                let conn = FakeConnection(channel: ch)
                inbox.push(conn)
                return ch.eventLoop.makeCompletedFuture {
                    try ch.pipeline.syncOperations.addHandler(ByteToMessageHandler(IPCFrameDecoder(maxFrame: 16 << 20)))
                    try ch.pipeline.syncOperations.addHandler(Collector(conn))
                }
            }
            .bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true).get()
    }

    func accept(timeout: Double = 5) async throws -> FakeConnection {
        try await connections.pop(timeout: timeout)
    }

    func close() async {
        try? await server.close().get()
        try? FileManager.default.removeItem(atPath: path)
    }
}

let testClient = IPCClient(clientId: "c1", username: "alice", peerAddress: "127.0.0.1", peerPort: 50_000,
                           protocolLevel: 4, listener: "tcp:0.0.0.0:1883")
