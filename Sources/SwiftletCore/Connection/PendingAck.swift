import MQTTCodec
import NIOCore

/// An acknowledgement that may have to wait for a store commit before it is sent.
final class PendingAck {
    var packet: Packet
    var ready: Bool
    var failed = false

    init(packet: Packet, ready: Bool) {
        self.packet = packet
        self.ready = ready
    }
}

extension MQTTConnectionHandler {
    /// Sends `ack` once `commit` (if any) succeeded and every earlier ack was sent.
    func queueAck(_ ack: Packet, after commit: EventLoopFuture<Void>?) {
        if commit == nil && acks.isEmpty {
            send(ack)
            return
        }
        let a = PendingAck(packet: ack, ready: commit == nil)
        acks.append(a)
        commit?.whenComplete { [self] result in
            a.ready = true
            if case .failure = result { a.failed = true }
            flushAcks()
        }
    }

    private func flushAcks() {
        while let first = acks.first, first.ready {
            acks.removeFirst()
            if first.failed {
                // Not durable: a 5.0 client is told (0x80), a 3.x client is disconnected so it
                // resends the message on reconnect rather than believing it delivered.
                guard version == .v5 else {
                    close()
                    return
                }
                switch first.packet {
                case .puback(var p): p.reasonCode = .unspecifiedError; send(.puback(p))
                case .pubrec(var p): p.reasonCode = .unspecifiedError; send(.pubrec(p))
                default: send(first.packet)
                }
            } else {
                send(first.packet)
            }
        }
        flushIfDirty()
    }
}
