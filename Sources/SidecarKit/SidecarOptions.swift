import NIOCore

/// Tunables of `Sidecar`; the defaults suit a production sidecar.
public struct SidecarOptions: Sendable {
    /// Sent as the sidecar's version in HELLO.
    public var version = "0.1.0"
    /// Largest frame this sidecar accepts (the connection uses the smaller of this and the broker's).
    public var maxFrame: UInt32 = 1 << 20
    /// Reconnect delays: 0.1 s doubling to 5 s, +/- 20 %.
    public var backoff = Backoff()
    /// A broker that does not answer HELLO and REGISTER within this time is dropped.
    public var handshakeTimeout = TimeAmount.seconds(10)
    /// HOOK_EVENTS batches waiting for the hook handlers; more are dropped and counted.
    public var hookQueueCapacity = 1024
    /// SIGTERM/SIGINT: GOODBYE, close, and `run()` returns. Off in tests and in embedders
    /// that manage signals themselves (call `shutdown()`).
    public var handleSignals = true

    public init() {}
}
