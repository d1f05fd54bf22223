import NIOCore
import SwiftletIPC

/// Why a gateway session could not be opened or used (Protocol/SPEC.md, section 7).
public enum GatewayError: Error, Equatable, CustomStringConvertible, Sendable {
    /// Not connected and registered with a broker that speaks protocol version 2.
    case notServing
    /// `SidecarHandlers.gateway(protocol:)` was not called for this protocol.
    case protocolNotRegistered(String)
    /// The broker answered GW_OPEN with ERROR.
    case refused(code: UInt16, message: String)
    /// The connection to the broker ended; its sessions end with it.
    case connectionLost
    /// The session is closed.
    case closed

    public var description: String {
        switch self {
        case .notServing: return "not registered with a broker speaking protocol version 2"
        case .protocolNotRegistered(let p): return "gateway protocol \(p) was not registered"
        case .refused(let code, let m): return "broker refused the session: ERROR \(code): \(m)"
        case .connectionLost: return "the connection to the broker was lost"
        case .closed: return "the session is closed"
        }
    }
}

/// One client of a gateway sidecar, carried into the broker as an MQTT connection: write the
/// MQTT bytes your protocol translates to with `send`, read the broker's MQTT bytes from
/// `inbound`. The broker applies everything it applies to a TCP client (auth, ACL, wills,
/// sessions). A session lives on one broker connection: when that ends, the session ends
/// (`onClose` runs with the reason) and the client must CONNECT again in a new session.
public final class GatewaySession: Sendable {
    public let id: UInt32
    public let protocolName: String
    /// The broker's MQTT bytes for this client, in order, in chunks of any size; finishes
    /// when the session closes.
    public let inbound: AsyncStream<ByteBuffer>

    private let sink: AsyncStream<ByteBuffer>.Continuation
    private let channel: Channel
    private let maxChunk: Int
    private let state = Locked(State())

    private struct State {
        var closedLocally = false
        var closeReason: String?
        var onClose: [@Sendable (String) -> Void] = []
    }

    init(id: UInt32, protocolName: String, channel: Channel, maxFrame: UInt32) {
        self.id = id
        self.protocolName = protocolName
        self.channel = channel
        self.maxChunk = min(Int(maxFrame) - 13, 65_536)
        (inbound, sink) = AsyncStream.makeStream(of: ByteBuffer.self)
    }

    /// Sends MQTT bytes to the broker (GW_DATA frames of at most 64 KiB each). The broker closes
    /// a session with more than 1 MiB it has not taken yet ("overflow"): await each send.
    public func send(_ bytes: ByteBuffer) async throws {
        guard state.withLock({ !$0.closedLocally && $0.closeReason == nil }) else { throw GatewayError.closed }
        var rest = bytes
        repeat {
            let chunk = rest.readSlice(length: min(maxChunk, rest.readableBytes))!
            do {
                try await channel.writeAndFlush(IPCMessage.gwData(session: id, data: chunk).frame(requestId: 0)).get()
            } catch {
                throw GatewayError.connectionLost
            }
        } while rest.readableBytes > 0
    }

    public func send(_ bytes: [UInt8]) async throws { try await send(ByteBuffer(bytes: bytes)) }

    /// Ends the session (GW_CLOSE): the broker hands the bytes sent before to the MQTT
    /// connection, then treats it as a dropped network connection (the will fires unless a
    /// DISCONNECT was sent). `inbound` finishes now; `onClose` runs when the broker confirms.
    public func close(reason: String = "client closed") async {
        let first = state.withLock { s -> Bool in
            defer { s.closedLocally = true }
            return !s.closedLocally && s.closeReason == nil
        }
        guard first else { return }
        sink.finish()
        try? await channel.writeAndFlush(IPCMessage.gwClose(session: id, reason: reason).frame(requestId: 0)).get()
    }

    /// Runs `body` once with the reason when the session has ended (the broker's GW_CLOSE, or
    /// the connection lost); at once when it already has.
    public func onClose(_ body: @escaping @Sendable (String) -> Void) {
        let reason = state.withLock { s -> String? in
            if s.closeReason == nil { s.onClose.append(body) }
            return s.closeReason
        }
        if let reason { body(reason) }
    }

    /// Why the session ended; nil while it is open (or closed locally and not yet confirmed).
    public var closeReason: String? { state.withLock { $0.closeReason } }

    // MARK: From the connection

    func received(_ data: ByteBuffer) {
        guard state.withLock({ !$0.closedLocally }) else { return }
        sink.yield(data)
    }

    func ended(_ reason: String) {
        let handlers = state.withLock { s -> [@Sendable (String) -> Void] in
            guard s.closeReason == nil else { return [] }
            s.closeReason = reason
            defer { s.onClose = [] }
            return s.onClose
        }
        sink.finish()
        for h in handlers { h(reason) }
    }
}
