import Foundation
import NIOCore
import SwiftletIPC

extension SidecarHub {
    private func owner(_ name: String) -> String { "sidecar:\(name)" }

    /// Routes `swiftlet-ctl <command>` to the sidecar that registered it (emqttd_ctl:register_cmd).
    func registerCommands(_ c: SidecarConnection) {
        let name = c.name
        for case .ctl(let command, let usage) in c.capabilities {
            let ok = control.register(command, usage: usage, owner: owner(name)) { [weak self] args, loop in
                guard let self, let conn = self.connection(named: name) else {
                    return loop.makeSucceededFuture(ControlReply(status: 2, text: "sidecar \(name) is not connected"))
                }
                return conn.request(.ctlRequest(command: command, args: args), timeout: self.config.requestTimeout)
                    .hop(to: loop)
                    .map { reply -> ControlReply in
                        guard case .ctlReply(let status, let text, let json) = reply else {
                            return ControlReply(status: 2, text: "sidecar \(name) answered \(reply.kind)")
                        }
                        return ControlReply(status: status, text: text, json: json)
                    }
                    .recover { ControlReply(status: 2, text: "sidecar \(name): \($0)") }
            }
            if !ok {
                logger.warning("ctl command already taken; not registered", metadata: [
                    "sidecar.name": "\(name)", "ctl.command": "\(command)"])
            }
        }
    }

    func unregisterCommands(_ c: SidecarConnection) {
        control.unregister(owner: owner(c.name))
    }
}

extension Supervisor {
    /// `swiftlet-ctl plugins list | load <name> | unload <name> | reload <name>`.
    func registerPluginsCommand() {
        let usage = Broker.pluginsUsage
        control.register("plugins", usage: usage, owner: "broker") { [weak self] args, loop in
            guard let self else { return loop.makeSucceededFuture(ControlReply(status: 2, text: "shutting down")) }
            switch (args.first, args.count) {
            case ("list", 1):
                return self.list().hop(to: loop).map { self.listReply($0) }
            case ("load", 2), ("unload", 2), ("reload", 2):
                let name = args[1]
                let f: EventLoopFuture<String>
                switch args[0] {
                case "load": f = self.load(name)
                case "unload": f = self.unload(name)
                default: f = self.reload(name)
                }
                return f.hop(to: loop)
                    .map { ControlReply(status: 0, text: $0, json: ControlWire.jsonText(["plugin": name, "result": $0])) }
                    .recover { ControlReply(status: 2, text: "\($0)") }
            default:
                return loop.makeSucceededFuture(ControlReply(status: 1, text: "usage: \(usage)"))
            }
        }
    }

    private func listReply(_ managed: [Status]) -> ControlReply {
        let managedNames = Set(managed.map(\.name))
        let connected = hub.connected
        let external = connected.filter { !managedNames.contains($0.name) }
        let sessions = Dictionary(connected.map { ($0.name, $0.gatewaySessions) }, uniquingKeysWith: { a, _ in a })
        var rows: [[String]] = []
        var json: [[String: Any]] = []
        for s in managed {
            rows.append([s.name, "managed", s.state, s.pid.map { "\($0)" } ?? "-", s.connected ? "yes" : "no",
                         "\(s.restarts)", "\(sessions[s.name] ?? 0)", s.lastExit.isEmpty ? "-" : s.lastExit])
            json.append(["name": s.name, "kind": "managed", "state": s.state, "pid": s.pid.map { Int($0) as Any } ?? NSNull(),
                         "enabled": s.enabled, "connected": s.connected, "restarts": s.restarts,
                         "last_exit": s.lastExit, "file": s.file, "gateway_sessions": sessions[s.name] ?? 0])
        }
        for e in external {
            rows.append([e.name, "external", "running", "-", "yes", "-", "\(e.gatewaySessions)", "-"])
            json.append(["name": e.name, "kind": "external", "state": "running", "connected": true,
                         "version": e.version, "hooks": e.hooks, "gateway_sessions": e.gatewaySessions])
        }
        return ControlReply(status: 0, text: TextTable.render(["NAME", "KIND", "STATE", "PID", "CONNECTED", "RESTARTS", "SESSIONS", "LAST EXIT"], rows),
                            json: ControlWire.jsonText(json))
    }
}
