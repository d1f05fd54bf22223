/// One client's topic ids (MQTT-SN 1.2 6.7): ids the gateway assigned to names, in both
/// directions, bounded. Predefined ids and short names live outside it (their own id types).
public struct SNTopicRegistry: Sendable {
    public let capacity: Int
    private var byName: [String: UInt16] = [:]
    private var byId: [UInt16: String] = [:]
    private var next: UInt16 = 0

    public init(capacity: Int) { self.capacity = capacity }

    public var count: Int { byId.count }

    public func name(for id: UInt16) -> String? { byId[id] }
    public func id(for name: String) -> UInt16? { byName[name] }

    /// The id of `name`, assigned now if it has none; nil when the registry is full.
    public mutating func register(_ name: String) -> UInt16? {
        if let id = byName[name] { return id }
        guard byId.count < capacity, byId.count < 0xFFFE else { return nil }
        repeat {
            next &+= 1
            if next == 0 || next == 0xFFFF { next = 1 }
        } while byId[next] != nil
        byName[name] = next
        byId[next] = name
        return next
    }
}
