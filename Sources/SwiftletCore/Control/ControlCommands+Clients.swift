import Foundation
import MQTTCodec
import NIOCore

/// `clients list | show <id> | kick <id>`.
extension Broker {
    static let clientsUsage = "clients list\nclients show <clientid>\nclients kick <clientid>"

    func registerClientCommands() {
        builtin("clients", usage: Self.clientsUsage) { b, args, loop in
            switch (args.first, args.count) {
            case ("list", 1): return b.clientsList(loop)
            case ("show", 2): return b.clientsShow(args[1], loop)
            case ("kick", 2): return b.clientsKick(args[1], loop)
            default: return loop.reply(.usage(Self.clientsUsage.replacingOccurrences(of: "\n", with: " | ")))
            }
        }
    }

    private func clientsList(_ loop: EventLoop) -> EventLoopFuture<ControlReply> {
        clientSnapshots().hop(to: loop).map { list in
            let rows = list.map { c in
                [TextTable.cell(c.clientId), TextTable.cell(c.username ?? "-", max: 24), c.peer, Self.protocolName(c.protocolLevel),
                 "\(c.keepAlive)", "\(c.subscriptions)", "\(c.inflight)", "\(c.queued)"]
            }
            let text = TextTable.render(["CLIENTID", "USERNAME", "PEER", "PROTOCOL", "KEEPALIVE", "SUBS", "INFLIGHT", "QUEUED"], rows)
                + "\n\(list.count) client(s) connected"
            return .done(text, list.map { $0.json })
        }
    }

    private func clientsShow(_ id: String, _ loop: EventLoop) -> EventLoopFuture<ControlReply> {
        onSessionLoop(id) { s, _ -> ClientSnapshot? in
            guard let c = s.connection, c.state == .connected else { return nil }
            return ClientSnapshot(c, session: s)
        }.hop(to: loop).map { found in
            guard let c = found.flatMap({ $0 }) else { return .failure("no connected client \(id)") }
            var fields = [
                ("clientid", c.clientId), ("username", c.username ?? "-"), ("peer", c.peer),
                ("protocol", Self.protocolName(c.protocolLevel)), ("clean_start", "\(c.cleanStart)"),
                ("keepalive", "\(c.keepAlive)"), ("listener", c.listener), ("subscriptions", "\(c.subscriptions)"),
                ("inflight", "\(c.inflight)"), ("queued", "\(c.queued)"),
            ]
            // A client certificate's names, when the client presented one (always in --json).
            if let cn = c.certCommonName { fields.append(("cert_cn", cn)) }
            if let dn = c.certSubject { fields.append(("cert_dn", dn)) }
            let text = TextTable.fields(fields)
            return .done(text, c.json)
        }
    }

    private func clientsKick(_ id: String, _ loop: EventLoop) -> EventLoopFuture<ControlReply> {
        onSessionLoop(id) { s, _ -> Bool? in
            guard let c = s.connection, c.state == .connected else { return nil }
            c.kick()
            return true
        }.hop(to: loop).map { found in
            guard found.flatMap({ $0 }) == true else { return .failure("no connected client \(id)") }
            self.logger.info("client kicked by swiftlet-ctl", metadata: ["mqtt.client_id": "\(id)"])
            return .done("client \(id) kicked", ["kicked": id])
        }
    }

    static func protocolName(_ level: UInt8) -> String {
        switch level {
        case 3: return "3.1"
        case 4: return "3.1.1"
        case 5: return "5.0"
        default: return "\(level)"
        }
    }
}

extension MQTTConnectionHandler {
    /// `swiftlet-ctl clients kick`: DISCONNECT 0x98 (administrative action) for 5.0, then
    /// close. Not a normal disconnect, so the client's will is published.
    func kick() {
        guard state == .connected else { return close() }
        if version == .v5 { send(.disconnect(DisconnectPacket(reasonCode: .administrativeAction))) }
        close()
    }
}
