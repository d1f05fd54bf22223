import GatewaySTOMP
import SidecarKit

/// etc/plugins/gateways.toml: one table per gateway (`[sidecar]` belongs to the broker).
struct GatewaysSettings: Sendable {
    var stomp = StompSettings()

    init() {}

    init(_ config: PluginConfig) throws {
        for key in config.pluginKeys where !["stomp"].contains(key) {
            throw SidecarConfigError(file: config.file, key: key, message: "unknown table (gateways: [stomp])")
        }
        if let s = try config.section("stomp") { stomp = try StompSettings(s) }
    }

    var anyEnabled: Bool { stomp.enabled }
}
