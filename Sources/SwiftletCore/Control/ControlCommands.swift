import Foundation
import NIOCore

/// The broker's own ctl commands, all registered with owner "broker".
extension Broker {
    static let controlOwner = "broker"

    /// Binds the ctl socket with every built-in command registered.
    func registerBuiltinCommands() {
        registerStatusCommands()
        registerListenerCommands()
        registerClientCommands()
        registerSessionCommands()
        registerRetainedCommands()
        registerAuthCommands()
        registerUserCommands()
        registerBannedCommands()
        registerReloadCommand()
        registerReconCommands()
        registerTraceCommand()
    }

    /// Registers a command whose handler gets the broker.
    func builtin(_ command: String, usage: String, _ handler: @escaping (Broker, [String], EventLoop) -> EventLoopFuture<ControlReply>) {
        control.register(command, usage: usage, owner: Self.controlOwner) { [unowned self] args, loop in
            handler(self, args, loop)
        }
    }
}

extension ControlReply {
    /// Success with a table or message and its JSON.
    static func done(_ text: String, _ json: Any) -> ControlReply {
        ControlReply(status: ControlReply.ok, text: text, json: ControlWire.jsonText(json))
    }

    static func usage(_ usage: String) -> ControlReply {
        ControlReply(status: ControlReply.usageError, text: "usage: swiftlet-ctl \(usage)")
    }

    static func failure(_ text: String) -> ControlReply {
        ControlReply(status: ControlReply.failed, text: text)
    }
}

extension EventLoop {
    func reply(_ r: ControlReply) -> EventLoopFuture<ControlReply> { makeSucceededFuture(r) }
}
