import SwiftletRouting
import Foundation
import MQTTCodec
import NIOCore

/// `sessions list | show <id>`, `subscriptions list | add | del`, `topics list`.
extension Broker {
    static let sessionsUsage = "sessions list\nsessions show <clientid>"
    static let subscriptionsUsage = "subscriptions list [<clientid>]\nsubscriptions add <clientid> <filter> <qos>\nsubscriptions del <clientid> <filter>"

    func registerSessionCommands() {
        builtin("sessions", usage: Self.sessionsUsage) { b, args, loop in
            switch (args.first, args.count) {
            case ("list", 1): return b.sessionsList(loop)
            case ("show", 2): return b.sessionsShow(args[1], loop)
            default: return loop.reply(.usage(Self.sessionsUsage.replacingOccurrences(of: "\n", with: " | ")))
            }
        }
        builtin("subscriptions", usage: Self.subscriptionsUsage) { b, args, loop in
            switch (args.first, args.count) {
            case ("list", 1): return b.subscriptionsList(nil, loop)
            case ("list", 2): return b.subscriptionsList(args[1], loop)
            case ("add", 4): return b.subscriptionsAdd(args[1], args[2], args[3], loop)
            case ("del", 3): return b.subscriptionsDel(args[1], args[2], loop)
            default: return loop.reply(.usage(Self.subscriptionsUsage.replacingOccurrences(of: "\n", with: " | ")))
            }
        }
        builtin("topics", usage: "topics list") { b, args, loop in
            guard args == ["list"] else { return loop.reply(.usage("topics list")) }
            return b.topicsList(loop)
        }
    }

    private func sessionsList(_ loop: EventLoop) -> EventLoopFuture<ControlReply> {
        sessionSnapshots().hop(to: loop).map { list in
            let rows = list.map { s in
                [TextTable.cell(s.clientId), s.connected ? "yes" : "no", Self.protocolName(s.protocolLevel), s.expiryText,
                 "\(s.subscriptions.count)", "\(s.inflight)", "\(s.queued)"]
            }
            let text = TextTable.render(["CLIENTID", "CONNECTED", "PROTOCOL", "EXPIRY", "SUBS", "INFLIGHT", "QUEUED"], rows)
                + "\n\(list.count) session(s)"
            return .done(text, list.map { $0.json })
        }
    }

    private func sessionsShow(_ id: String, _ loop: EventLoop) -> EventLoopFuture<ControlReply> {
        onSessionLoop(id) { s, ctx in Self.sessionSnapshot(s, ctx: ctx) }.hop(to: loop).map { found in
            guard let s = found.flatMap({ $0 }) else { return .failure("no session \(id)") }
            var text = TextTable.fields([
                ("clientid", s.clientId), ("connected", s.connected ? "yes" : "no"),
                ("protocol", Self.protocolName(s.protocolLevel)), ("expiry_interval", s.expiryText),
                ("persistent", "\(s.persistent)"), ("inflight", "\(s.inflight)"), ("queued", "\(s.queued)"),
                ("awaiting_rel", "\(s.awaitingRel)"), ("offline_seconds", s.offlineFor.map { "\($0)" } ?? "-"),
            ])
            text += "\n\n" + Self.subscriptionTable(s.subscriptions.map { (s.clientId, $0.filter, $0.options) })
            var json = s.json
            json["subscriptions"] = s.subscriptions.map { ["filter": $0.filter].merging($0.options.json) { a, _ in a } }
            return .done(text, json)
        }
    }

    static func subscriptionTable(_ subs: [(String, String, SubscriptionOptions)]) -> String {
        TextTable.render(["CLIENTID", "FILTER", "QOS", "OPTIONS"], subs.map { c, f, o in
            var flags: [String] = []
            if o.noLocal { flags.append("nl") }
            if o.retainAsPublished { flags.append("rap") }
            if o.retainHandling.rawValue != 0 { flags.append("rh=\(o.retainHandling.rawValue)") }
            if let id = o.subscriptionIdentifier { flags.append("id=\(id)") }
            return [TextTable.cell(c), TextTable.cell(f, max: 64), "\(o.qos.rawValue)", flags.isEmpty ? "-" : flags.joined(separator: ",")]
        })
    }

    private func allSubscriptions(_ clientId: String?) -> EventLoopFuture<[(String, String, SubscriptionOptions)]> {
        let sessions: [Session]
        if let clientId { sessions = registry.get(clientId).map { [$0] } ?? [] } else { sessions = registry.all() }
        return onSessionLoops(sessions) { s, _ in
            s.subscriptions.map { (s.clientId, $0.key, $0.value.1) }
        }.map { parts in
            parts.flatMap { $0 }.sorted { ($0.0, $0.1) < ($1.0, $1.1) }
        }
    }

    private func subscriptionsList(_ clientId: String?, _ loop: EventLoop) -> EventLoopFuture<ControlReply> {
        if let clientId, registry.get(clientId) == nil { return loop.reply(.failure("no session \(clientId)")) }
        return allSubscriptions(clientId).hop(to: loop).map { subs in
            let text = Self.subscriptionTable(subs) + "\n\(subs.count) subscription(s)"
            return .done(text, subs.map { ["clientid": $0.0, "filter": $0.1].merging($0.2.json) { a, _ in a } })
        }
    }

    private func topicsList(_ loop: EventLoop) -> EventLoopFuture<ControlReply> {
        allSubscriptions(nil).hop(to: loop).map { subs in
            var counts: [String: Int] = [:]
            for (_, f, _) in subs { counts[f, default: 0] += 1 }
            let sorted = counts.sorted { $0.key < $1.key }
            let text = TextTable.render(["FILTER", "SUBSCRIBERS"], sorted.map { [TextTable.cell($0.key, max: 80), "\($0.value)"] })
                + "\n\(sorted.count) topic filter(s)"
            return .done(text, sorted.map { ["filter": $0.key, "subscribers": $0.value] })
        }
    }

    private func subscriptionsAdd(_ id: String, _ filter: String, _ qosText: String, _ loop: EventLoop) -> EventLoopFuture<ControlReply> {
        guard let q = UInt8(qosText), q <= 2 else { return loop.reply(.usage("subscriptions add <clientid> <filter> <qos 0|1|2>")) }
        let m = connectionPolicy.mqtt
        guard let parsed = ParsedFilter.parse(filter), parsed.filter.utf8.count <= m.maxTopicLength,
              Topic.levelCount(parsed.filter) <= m.maxTopicLevels else {
            return loop.reply(.failure("invalid topic filter \(filter)"))
        }
        let opts = SubscriptionOptions(qos: QoS(rawValue: min(q, UInt8(m.maxQoS)))!)
        return onSessionLoop(id) { s, ctx -> EventLoopFuture<Void> in
            s.subscriptions[filter] = (parsed, opts)
            s.record(.subscribe(clientId: s.clientId, filter: filter, options: opts))
            return self.router.subscribe(s, parsed, opts, on: ctx.eventLoop).map { s }.flatMap { s in
                // Retained messages, as for a SUBSCRIBE (on the session's current loop).
                self.onSessionLoops([s]) { s, ctx -> Void in
                    guard parsed.group == nil, s.subscriptions[filter] != nil else { return }
                    for msg in self.retained.match(filter: parsed.filter, now: ctx.eventLoop.now) {
                        s.deliver(Delivery(session: s, message: msg, qos: min(msg.qos, opts.qos), retainFlag: true,
                                           subscriptionIds: []), ctx: ctx)
                    }
                }.map { _ in }
            }
        }.flatMap { (f: EventLoopFuture<Void>?) -> EventLoopFuture<ControlReply> in
            guard let f else { return loop.reply(.failure("no session \(id)")) }
            return f.hop(to: loop).map {
                self.logger.info("subscription added by swiftlet-ctl", metadata: ["mqtt.client_id": "\(id)", "mqtt.topic": "\(filter)"])
                return .done("\(id) subscribed to \(filter) with QoS \(opts.qos.rawValue)",
                             ["clientid": id, "filter": filter, "qos": Int(opts.qos.rawValue)])
            }
        }
    }

    private func subscriptionsDel(_ id: String, _ filter: String, _ loop: EventLoop) -> EventLoopFuture<ControlReply> {
        onSessionLoop(id) { s, ctx -> EventLoopFuture<Bool> in
            guard let (parsed, _) = s.subscriptions.removeValue(forKey: filter) else { return ctx.eventLoop.makeSucceededFuture(false) }
            s.record(.unsubscribe(clientId: s.clientId, filter: filter))
            return self.router.unsubscribe(s, parsed, on: ctx.eventLoop).map { true }
        }.flatMap { (f: EventLoopFuture<Bool>?) -> EventLoopFuture<ControlReply> in
            guard let f else { return loop.reply(.failure("no session \(id)")) }
            return f.hop(to: loop).map { removed in
                guard removed else { return .failure("\(id) has no subscription \(filter)") }
                self.logger.info("subscription removed by swiftlet-ctl", metadata: ["mqtt.client_id": "\(id)", "mqtt.topic": "\(filter)"])
                return .done("\(id) unsubscribed from \(filter)", ["clientid": id, "filter": filter])
            }
        }
    }
}
