/// The MQTT protocol level carried in CONNECT.
public enum ProtocolVersion: UInt8, Sendable, Hashable, CustomStringConvertible {
    /// MQTT 3.1 ("MQIsdp").
    case v3_1 = 3
    /// MQTT 3.1.1 ("MQTT").
    case v3_1_1 = 4
    /// MQTT 5.0 ("MQTT").
    case v5 = 5

    public var protocolName: String { self == .v3_1 ? "MQIsdp" : "MQTT" }
    public var isV5: Bool { self == .v5 }

    public var description: String {
        switch self {
        case .v3_1: return "3.1"
        case .v3_1_1: return "3.1.1"
        case .v5: return "5.0"
        }
    }
}

/// Quality of service of a PUBLISH or granted in a subscription.
public enum QoS: UInt8, Sendable, Hashable, Comparable {
    case atMostOnce = 0
    case atLeastOnce = 1
    case exactlyOnce = 2

    public static func < (lhs: QoS, rhs: QoS) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// The control packet type, the high nibble of the first byte.
public enum PacketType: UInt8, Sendable {
    case connect = 1, connack, publish, puback, pubrec, pubrel, pubcomp
    case subscribe, suback, unsubscribe, unsuback, pingreq, pingresp, disconnect, auth
}
