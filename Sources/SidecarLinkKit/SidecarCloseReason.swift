import SwiftletIPC

/// Why a sidecar connection ended (Protocol/SPEC.md, section 4). The supervisor and the logs
/// switch on the case; `description` is the text sent in GOODBYE and logged.
public enum SidecarCloseReason: Sendable, Equatable, CustomStringConvertible {
    /// The sidecar broke the protocol; `why` says how (SPEC 4's list).
    case protocolViolation(String)
    /// No HELLO within the handshake timeout.
    case helloTimeout
    /// No PONG within the health timeout: the sidecar hangs.
    case healthTimeout
    /// The sidecar closed the socket (crash, kill, a close without GOODBYE).
    case peerClosed
    /// The sidecar said GOODBYE with this reason.
    case goodbye(String)
    /// The broker is shutting down.
    case brokerShutdown
    /// Another connection registered under the same name.
    case replaced
    /// The socket failed (an I/O error from the channel).
    case transportError(String)

    /// What the sidecar did wrong, for the three reasons that are protocol violations.
    public var violation: String? {
        switch self {
        case .protocolViolation(let why): return why
        case .helloTimeout: return "no HELLO within the handshake timeout"
        case .healthTimeout: return "no PONG within the health timeout"
        default: return nil
        }
    }

    public var description: String {
        if let why = violation { return "protocol violation: \(why)" }
        switch self {
        case .peerClosed: return "connection closed"
        case .goodbye(let r): return "goodbye: \(r)"
        case .brokerShutdown: return "broker shutting down"
        case .replaced: return "replaced by a new connection with the same name"
        case .transportError(let e): return e
        case .protocolViolation, .helloTimeout, .healthTimeout: return "protocol violation"
        }
    }
}

/// Why a request to a sidecar failed.
public enum SidecarRequestError: Error, CustomStringConvertible, Sendable, Equatable {
    case down(String)
    case timedOut(String)
    case closed(String)
    case refused(code: UInt16, message: String)
    case unexpectedReply(IPCKind)

    public var description: String {
        switch self {
        case .down(let n): return "sidecar \(n) is not connected"
        case .timedOut(let n): return "sidecar \(n) timed out"
        case .closed(let n): return "sidecar \(n) closed the connection"
        case .refused(let code, let m): return "sidecar answered ERROR \(code): \(m)"
        case .unexpectedReply(let k): return "unexpected reply \(k)"
        }
    }
}
