import Logging
import NIOCore
import SwiftletIPC

/// Where a handler's reply goes: the connection its request came on, with that connection's
/// negotiated maximum frame size. A reply for a connection that has closed is dropped.
struct BrokerLink: Sendable {
    let channel: Channel
    let maxFrame: UInt32

    func send(_ message: IPCMessage, id: UInt32, logger: Logger) async {
        var frame = message.frame(requestId: id)
        let length = 5 + frame.body.readableBytes
        if length > Int(maxFrame) {
            logger.error("reply larger than the maximum frame, answering ERROR 7 instead",
                         metadata: ["sidecar.kind": "\(message.kind)", "sidecar.frame_length": "\(length)"])
            frame = IPCMessage.error(code: IPCErrorCode.internalError.rawValue,
                                     message: "reply of \(length) bytes above the maximum frame \(maxFrame)").frame(requestId: id)
        }
        do {
            try await channel.writeAndFlush(frame).get()
        } catch {
            logger.debug("reply not sent, the connection is gone", metadata: ["sidecar.request_id": "\(id)"])
        }
    }
}
