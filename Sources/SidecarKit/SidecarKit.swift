// Plugins see the protocol's types (IPCClient, IPCHookEvent, IPCPublishMessage, ...) with
// `import SidecarKit` alone.
@_exported import SwiftletIPC

/// SidecarKit: the library every Swift sidecar uses. See docs/sidecarkit.md.
public enum SidecarKit {
    /// The sidecar protocol version spoken (Protocol/SPEC.md).
    public static let protocolVersion: UInt16 = IPCVersion.current
}
