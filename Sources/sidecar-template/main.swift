import Foundation
import Logging
import SidecarKit

// swiftlet-sidecar-template: the seed's emqttd_plugin_template as a Swiftlet sidecar. It
// registers a demo authenticator and ACL (users and rules from [template] in its plugin
// file), logs the nine hooks, and answers `swiftlet-ctl cmd arg1 arg2`. Copy it to start a
// plugin: see README.md next to this file.

let environment = SidecarEnvironment.current
let logger = SidecarLogging.makeLogger(name: environment.name ?? "template", environment: environment)

let settings: TemplateSettings
do {
    settings = try TemplateSettings(PluginConfig.load(environment))
} catch {
    logger.critical("\(error)")
    exit(2)
}
logger.info("template settings", metadata: ["template.users": "\(settings.users.count)", "template.acl_users": "\(settings.acl.count)"])

var handlers = SidecarHandlers()
handlers.onAuthenticate(order: settings.order) { settings.authenticate($0) }
handlers.onAuthorize(order: settings.order) { settings.authorize($0) }
for hook in templateHooks {
    handlers.onHook(hook) { logHookEvents($0, logger: logger) }
}
handlers.addCommand("cmd", usage: "cmd arg1 arg2 ...: echoes its arguments (plugin template)") { runCmd($0) }

do {
    let sidecar = try Sidecar(name: "template", handlers: handlers, environment: environment, logger: logger)
    await sidecar.run()
} catch {
    logger.critical("\(error)")
    exit(2)
}
