import NIOCore

/// Holds back a client channel's reads while its broker side is behind: the handler routes
/// `read(context:)` through `read` and turns reading off and on with `set`. (A slow broker
/// side thus slows the client by TCP instead of growing a queue in the gateway.)
public struct ReadGate {
    private var open = true
    private var pending = false

    public init() {}

    public mutating func read(_ context: ChannelHandlerContext) {
        if open {
            context.read()
        } else {
            pending = true
        }
    }

    public mutating func set(_ on: Bool, _ context: ChannelHandlerContext?) {
        open = on
        if on && pending, let context {
            pending = false
            context.read()
        }
    }
}
