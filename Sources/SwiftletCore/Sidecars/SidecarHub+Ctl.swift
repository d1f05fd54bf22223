import NIOCore
import SwiftletIPC

extension SidecarHub {
    /// Routes `swiftlet-ctl <command>` to the sidecar that registered it (emqttd_ctl:register_cmd).
    func registerCommands(_ c: SidecarConnection) {}

    func unregisterCommands(_ c: SidecarConnection) {}
}
