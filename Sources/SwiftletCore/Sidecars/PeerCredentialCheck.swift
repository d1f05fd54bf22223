#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOCore

/// Closes a sidecar connection whose peer is not the broker's user or root (or, with a
/// 0660 socket, a member of the broker's group), from SO_PEERCRED (SPEC 1).
final class PeerCredentialCheck: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    let allowGroup: Bool
    let logger: Logger
    /// Told the peer's credentials (on the channel's loop) when they are accepted.
    let onAccepted: @Sendable (PeerCred) -> Void

    init(allowGroup: Bool, logger: Logger, onAccepted: @escaping @Sendable (PeerCred) -> Void = { _ in }) {
        self.allowGroup = allowGroup
        self.logger = logger
        self.onAccepted = onAccepted
    }

    func handlerAdded(context: ChannelHandlerContext) {
        #if os(Linux)
        guard let provider = context.channel as? SocketOptionProvider else { return }
        let loggerCopy = logger
        let allowGroup = self.allowGroup
        let channel = context.channel
        let onAccepted = self.onAccepted
        provider.unsafeGetSocketOption(level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(SO_PEERCRED))
            .whenComplete { (result: Result<PeerCred, Error>) in
                switch result {
                case .success(let cred):
                    let ok = cred.uid == 0 || cred.uid == getuid() || (allowGroup && cred.gid == getgid())
                    if !ok {
                        loggerCopy.warning("sidecar socket: peer refused by its credentials", metadata: [
                            "sidecars.peer_uid": "\(cred.uid)", "sidecars.peer_gid": "\(cred.gid)", "sidecars.peer_pid": "\(cred.pid)"])
                        channel.close(promise: nil)
                    } else {
                        onAccepted(cred)
                    }
                case .failure(let e):
                    loggerCopy.warning("sidecar socket: cannot read peer credentials; closing", metadata: ["error": "\(e)"])
                    channel.close(promise: nil)
                }
            }
        #endif
    }
}

/// `struct ucred` of Linux (pid, uid, gid).
struct PeerCred: Sendable {
    var pid: Int32 = 0
    var uid: UInt32 = 0
    var gid: UInt32 = 0
}
