import SwiftletIPC

/// The broker events a sidecar can subscribe to (Protocol/SPEC.md, section 3.1).
public enum Hook: Int, CaseIterable, Sendable {
    case clientConnected, clientSubscribe, clientUnsubscribe, sessionSubscribed, sessionUnsubscribed
    case messagePublish, messageDelivered, messageAcked, clientDisconnected

    public var name: String {
        switch self {
        case .clientConnected: return "client.connected"
        case .clientSubscribe: return "client.subscribe"
        case .clientUnsubscribe: return "client.unsubscribe"
        case .sessionSubscribed: return "session.subscribed"
        case .sessionUnsubscribed: return "session.unsubscribed"
        case .messagePublish: return "message.publish"
        case .messageDelivered: return "message.delivered"
        case .messageAcked: return "message.acked"
        case .clientDisconnected: return "client.disconnected"
        }
    }

    public init?(name: String) {
        guard let h = Hook.allCases.first(where: { $0.name == name }) else { return nil }
        self = h
    }

    /// Hooks a REGISTER may subscribe to; `sync` only for message.publish (SPEC 3.1).
    public static func acceptable(_ caps: [IPCCapability]) -> [String] {
        var out: [String] = []
        for case .hook(let name, let sync, _) in caps {
            guard let h = Hook(name: name), !sync || h == .messagePublish, !out.contains(name) else { continue }
            out.append(name)
        }
        return out
    }
}
