import SwiftletRouting
import Foundation
import NIOConcurrencyHelpers
import NIOCore

/// Where a trace's lines go: a file (created 0600, appended), written on a queue of its own so
/// an event loop never waits for the disk. Closed when the trace's time is up.
final class TraceSink: @unchecked Sendable {
    private let queue = DispatchQueue(label: "swiftlet.trace")
    private let handle: FileHandle
    private let lines = NIOLockedValueBox(0)
    let path: String

    init(path: String) throws {
        self.path = path
        if !FileManager.default.fileExists(atPath: path) {
            guard FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600]) else {
                throw TraceError("cannot create \(path)")
            }
        }
        guard let h = FileHandle(forWritingAtPath: path) else { throw TraceError("cannot write \(path)") }
        h.seekToEndOfFile()
        handle = h
    }

    func write(_ line: String) {
        lines.withLockedValue { $0 += 1 }
        queue.async { [handle] in handle.write(Data((line + "\n").utf8)) }
    }

    var count: Int { lines.withLockedValue { $0 } }

    func close() {
        queue.async { [handle] in try? handle.close() }
    }
}

struct TraceError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// A tap put in one connection's pipeline, just before its MQTT handler, for the length of a
/// `swiftlet-ctl trace`: it reads the MQTT stream both ways and writes one line per packet
/// (type, flags, topic and packet id of a PUBLISH, length; the payload only when asked).
/// Connections that are not traced carry no tap and pay nothing.
final class PacketTap: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let sink: TraceSink
    let clientId: String
    /// Only PUBLISH packets whose topic matches (a topic trace); nil: every packet.
    let topicFilter: String?
    let payloads: Bool
    private var inbound = ByteBuffer()
    private var outbound = ByteBuffer()

    init(sink: TraceSink, clientId: String, topicFilter: String?, payloads: Bool) {
        self.sink = sink
        self.clientId = clientId
        self.topicFilter = topicFilter
        self.payloads = payloads
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        inbound.writeBuffer(&bytes)
        scan(&inbound, direction: "in")
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        var bytes = unwrapOutboundIn(data)
        outbound.writeBuffer(&bytes)
        scan(&outbound, direction: "out")
        context.write(data, promise: promise)
    }

    static let names = ["RESERVED", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL", "PUBCOMP", "SUBSCRIBE",
                        "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT", "AUTH"]

    /// Every complete packet in `buffer`, one line each; the rest waits for more bytes.
    private func scan(_ buffer: inout ByteBuffer, direction: String) {
        while let first: UInt8 = buffer.getInteger(at: buffer.readerIndex) {
            var length = 0
            var multiplier = 1
            var offset = 1
            var complete = false
            while offset <= 4, let b: UInt8 = buffer.getInteger(at: buffer.readerIndex + offset) {
                length += Int(b & 0x7F) * multiplier
                multiplier *= 128
                offset += 1
                if b & 0x80 == 0 { complete = true; break }
            }
            guard complete, buffer.readableBytes >= offset + length else {
                if offset > 4 { buffer.clear() }   // not MQTT framing: the MQTT handler will close it
                return
            }
            let body = buffer.getSlice(at: buffer.readerIndex + offset, length: length) ?? ByteBuffer()
            buffer.moveReaderIndex(forwardBy: offset + length)
            line(type: Int(first >> 4), flags: first & 0x0F, body: body, direction: direction)
        }
        buffer.discardReadBytes()
    }

    private func line(type: Int, flags: UInt8, body: ByteBuffer, direction: String) {
        var text = "\(Self.timestamp()) \(clientId) \(direction) \(Self.names[type])"
        if type == 3 {
            var b = body
            let qos = (flags >> 1) & 3
            guard let n: UInt16 = b.readInteger(), let topic = b.readString(length: Int(n)) else { return }
            if let topicFilter, !TopicMatch.matches(filter: topicFilter, topic: topic) { return }
            text += " topic=\(topic) qos=\(qos) retain=\(flags & 1) dup=\((flags >> 3) & 1)"
            if qos > 0, let id: UInt16 = b.readInteger() { text += " id=\(id)" }
            text += " bytes=\(body.readableBytes)"
            if payloads {
                // MQTT 5 properties sit before the payload; the trace shows what follows the header.
                let shown = b.readableBytesView.prefix(256)
                text += " payload=" + (String(validating: shown, as: UTF8.self).map { $0.debugDescription }
                    ?? shown.map { String(format: "%02x", $0) }.joined())
            }
        } else {
            if topicFilter != nil { return }
            text += " bytes=\(body.readableBytes)"
            if [4, 5, 6, 7, 9, 11].contains(type), let id: UInt16 = body.getInteger(at: body.readerIndex) { text += " id=\(id)" }
        }
        sink.write(text)
    }

    static func timestamp() -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: Date())
    }
}

extension Broker {
    /// Puts a tap on the connections `select` picks (on their loops) for `seconds`, then takes
    /// them out and closes the file. Returns how many connections are traced.
    func startTrace(to path: String, seconds: Double, payloads: Bool, topicFilter: String?,
                    select: @escaping (MQTTConnectionHandler) -> Bool) -> EventLoopFuture<Int> {
        let el = group.next()
        let sink: TraceSink
        do { sink = try TraceSink(path: path) } catch { return el.makeFailedFuture(error) }
        let futures = onConnectionLoops { list -> Int in
            var n = 0
            for c in list where c.state == .connected && select(c) {
                // A parked connection gets its channel back to be traced (and stays on it while traced).
                if let parked = c.transport as? ParkedSocket { c.unpark(parked) }
                guard let ctx = c.transport as? ChannelHandlerContext else { continue }
                let tap = PacketTap(sink: sink, clientId: c.clientId, topicFilter: topicFilter, payloads: payloads)
                guard (try? ctx.pipeline.syncOperations.addHandler(tap, position: .before(ctx.handler))) != nil else { continue }
                n += 1
                c.traced = true
                ctx.eventLoop.scheduleTask(in: .nanoseconds(Int64(seconds * 1e9))) {
                    ctx.pipeline.syncOperations.removeHandler(tap, promise: nil)
                    c.traced = false
                }
            }
            return n
        }
        return EventLoopFuture.whenAllSucceed(futures, on: el).map { counts in
            el.scheduleTask(in: .nanoseconds(Int64(seconds * 1e9) + 100_000_000)) { sink.close() }
            return counts.reduce(0, +)
        }
    }
}
