import Foundation
import GatewayKit
import Logging
import NIOPosix
import SidecarKit

// swiftlet-gateways: the seed's emqttd_sn, emqttd_stomp and emqttd_sockjs
// as one sidecar process. Each client of a gateway becomes an ordinary broker client through
// a gateway session (Protocol/SPEC.md section 7). Managed by the broker from
// etc/plugins/gateways.toml, or external: `swiftlet-gateways --socket PATH --config FILE`
// (docs/gateways.md).

let environment = SidecarEnvironment.current
let logger = SidecarLogging.makeLogger(name: environment.name ?? "gateways", environment: environment)

let settings: GatewaysSettings
do {
    settings = try GatewaysSettings(PluginConfig.load(environment))
} catch {
    logger.critical("\(error)")
    exit(2)
}
if !settings.anyEnabled { logger.warning("no gateway is enabled in the configuration") }

let stompStats = GatewayStats(name: "stomp")
let snStats = GatewayStats(name: "mqtt-sn")
let sockjsStats = GatewayStats(name: "sockjs")
let allStats = [snStats, stompStats, sockjsStats]

var handlers = SidecarHandlers()
if settings.stomp.enabled { handlers.gateway(protocol: "stomp") }
if settings.mqttsn.enabled { handlers.gateway(protocol: "mqtt-sn") }
if settings.sockjs.enabled { handlers.gateway(protocol: "sockjs") }
handlers.addCommand("gateways", usage: "gateways: clients and counters of each gateway of swiftlet-gateways") { _ in
    var text = ""
    var rows: [String] = []
    for s in allStats {
        let n = s.snapshot
        text += "\(s.name): clients=\(n.clients) accepted=\(n.accepted) refused=\(n.refused) dropped=\(n.dropped) malformed=\(n.malformed)\n"
        rows.append("{\"gateway\":\"\(s.name)\",\"clients\":\(n.clients),\"accepted\":\(n.accepted),\"refused\":\(n.refused),"
                    + "\"dropped\":\(n.dropped),\"malformed\":\(n.malformed)}")
    }
    return .ok(text, json: "[" + rows.joined(separator: ",") + "]")
}

let sidecar: Sidecar
do {
    sidecar = try Sidecar(name: "gateways", handlers: handlers, environment: environment, logger: logger)
} catch {
    logger.critical("\(error)")
    exit(2)
}

var stomp: TCPListener?
var mqttsn: MQTTSNServer?
var sockjs: TCPListener?
do {
    if settings.sockjs.enabled {
        sockjs = try await SockJSServer.start(settings: settings.sockjs, stomp: settings.stomp, opener: sidecar, stats: sockjsStats,
                                              logger: logger)
    }
    if settings.mqttsn.enabled {
        mqttsn = try await MQTTSNServer.start(settings: settings.mqttsn, opener: sidecar, stats: snStats, logger: logger,
                                              group: MultiThreadedEventLoopGroup.singleton)
    }
    if settings.stomp.enabled {
        stomp = try await StompServer.start(settings: settings.stomp, opener: sidecar, stats: stompStats, logger: logger)
    }
} catch {
    logger.critical("cannot start the gateways: \(error)")
    exit(1)
}

await sidecar.run()
await stomp?.stop()
await mqttsn?.stop()
await sockjs?.stop()
