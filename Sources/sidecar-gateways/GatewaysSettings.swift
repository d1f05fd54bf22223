import GatewayMQTTSN
import GatewaySTOMP
import GatewaySockJS
import SidecarKit

/// etc/plugins/gateways.toml: one table per gateway (`[sidecar]` belongs to the broker).
struct GatewaysSettings: Sendable {
    var stomp = StompSettings()
    var mqttsn = SNSettings()
    var sockjs = SockJSSettings()

    init() {}

    init(_ config: PluginConfig) throws {
        for key in config.pluginKeys where !["stomp", "mqttsn", "sockjs"].contains(key) {
            throw SidecarConfigError(file: config.file, key: key, message: "unknown table (gateways: [mqttsn], [stomp], [sockjs])")
        }
        if let s = try config.section("stomp") { stomp = try StompSettings(s) }
        if let s = try config.section("mqttsn") { mqttsn = try SNSettings(s) }
        if let s = try config.section("sockjs") { sockjs = try SockJSSettings(s) }
    }

    var anyEnabled: Bool { stomp.enabled || mqttsn.enabled || sockjs.enabled }
}
