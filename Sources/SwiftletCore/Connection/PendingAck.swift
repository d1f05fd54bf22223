import MQTTCodec
import NIOCore

/// An acknowledgement that may have to wait for a store commit before it is sent.
struct PendingAck {
    var packet: Packet
    /// The commit it waits for; nil once it may be sent.
    var commit: EventLoopFuture<Void>?
    var failed = false
}

extension MQTTConnectionHandler {
    /// Sends `ack` once `commit` (if any) succeeded and every earlier ack was sent. Acks that
    /// wait for the same commit (the store gives one future per loop and batch) share one
    /// callback, which releases them all and flushes once.
    func queueAck(_ ack: Packet, after commit: EventLoopFuture<Void>?) {
        if commit == nil && acks.isEmpty {
            send(ack)
            return
        }
        acks.append(PendingAck(packet: ack, commit: commit))
        guard let commit, commit !== awaitedCommit else { return }
        awaitedCommit = commit
        commit.whenComplete { [self] result in
            if awaitedCommit === commit { awaitedCommit = nil }
            let failed: Bool
            if case .failure = result { failed = true } else { failed = false }
            for i in acks.indices where acks[i].commit === commit {
                acks[i].commit = nil
                acks[i].failed = failed
            }
            flushAcks()
        }
    }

    private func flushAcks() {
        while let first = acks.first, first.commit == nil {
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
