// libFuzzer target: sidecar-protocol bytes as the broker reads them (docs/fuzzing.md).
//
// The input is a byte stream from a sidecar. SidecarConnection splits it with
// `IPCFrameDecoder` (handshake maximum 65,536) and decodes each frame with
// `IPCMessage.decode`; this target does the same and checks, beyond "no crash":
// - fed all at once or one byte at a time, the decoder yields the same frames and fails
//   with the same error (the broker gets bytes in arbitrary chunks);
// - a frame the decoder accepts re-encodes to the same bytes;
// - a message `IPCMessage.decode` accepts re-encodes to exactly the frame body it came from;
// - the broker's link state machine (`SidecarLink`, what SidecarConnection executes) takes the
//   same bytes, whole or dripped, with the clock moving, and after a violation does nothing
//   more: no frame is handled once the link is closed, and every request the broker had
//   outstanding is failed exactly once.
import NIOCore
import SidecarLinkKit
import SwiftletIPC

/// Frames until the decoder wants more bytes or throws; at the end, `decodeLast` as at EOF.
private func decodeAll(_ bytes: UnsafeRawBufferPointer, chunk: Int) -> ([IPCFrame], IPCError?) {
    var decoder = IPCFrameDecoder()
    var buffer = ByteBuffer()
    var frames: [IPCFrame] = []
    var offset = 0
    repeat {
        let end = min(offset + chunk, bytes.count)
        buffer.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[offset..<end]))
        offset = end
        do {
            while let frame = try decoder.decode(buffer: &buffer) { frames.append(frame) }
        } catch let e as IPCError {
            return (frames, e)
        } catch {
            preconditionFailure("IPCFrameDecoder threw a non-IPCError: \(error)")
        }
    } while offset < bytes.count
    do {
        while let frame = try decoder.decodeLast(buffer: &buffer, seenEOF: true) { frames.append(frame) }
    } catch let e as IPCError {
        return (frames, e)
    } catch {
        preconditionFailure("IPCFrameDecoder threw a non-IPCError: \(error)")
    }
    return (frames, nil)
}

/// Feeds the bytes to a link in chunks of `chunk`, with broker requests outstanding and the
/// clock moving; returns the link's state and the waiters it completed or failed.
private func drive(_ bytes: UnsafeRawBufferPointer, chunk: Int) -> (SidecarLink<Int>.State, [Int]) {
    let second: UInt64 = 1_000_000_000
    var now: UInt64 = 1_000 * second
    var link = SidecarLink<Int>(settings: .init(brokerVersion: "fuzz", node: "n"), now: now)
    let client = IPCClient(clientId: "c", username: "u", peerAddress: "127.0.0.1", peerPort: 1, protocolLevel: 5,
                           listener: "tcp")
    var answered: [Int] = []
    var closedAt: Int?
    func take(_ actions: [SidecarLink<Int>.Action], _ step: Int) {
        for a in actions {
            switch a {
            case .complete(let w, _), .fail(let w, _): answered.append(w)
            case .closeChannel, .ended: if closedAt == nil { closedAt = step }
            default: break
            }
        }
    }
    var offset = 0
    var step = 0
    repeat {
        let end = min(offset + chunk, bytes.count)
        var b = ByteBuffer()
        b.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[offset..<end]))
        offset = end
        step += 1
        if link.state == .registered {
            // The broker asks something now and then: it must be answered or failed once.
            take(link.request(.authnRequest(client: client, password: nil), timeout: 3 * second, waiter: step, now: now), step)
        }
        take(link.receive(b, now: now), step)
        link.readComplete()
        now += second / 2
        take(link.tick(now: now), step)
    } while offset < bytes.count
    take(link.channelClosed(), step + 1)
    precondition(link.state == .closed, "the link is not closed after its channel closed")
    precondition(Set(answered).count == answered.count, "a waiter was answered twice: \(answered)")
    precondition(link.outstanding == 0, "requests outstanding after close")
    return (link.state, answered)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzIPC(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    let whole = decodeAll(bytes, chunk: max(size, 1))
    let drip = decodeAll(bytes, chunk: 1)
    precondition(whole.0 == drip.0 && whole.1 == drip.1,
                 "whole-buffer and byte-by-byte decoding differ: \(whole) vs \(drip)")

    _ = drive(bytes, chunk: max(size, 1))
    _ = drive(bytes, chunk: 7)

    for frame in whole.0 {
        precondition(frame.body.readableBytes <= Int(IPCVersion.handshakeMaxFrame) - 5, "frame over the maximum")
        var again = IPCFrameDecoder()
        var encoded = frame.encoded
        precondition((try? again.decode(buffer: &encoded)) == frame, "frame does not re-encode to itself: \(frame)")

        let message: IPCMessage
        do {
            message = try IPCMessage.decode(frame)
        } catch let e as IPCError {
            guard case .malformed = e else { preconditionFailure("IPCMessage.decode threw \(e) for \(frame)") }
            continue
        } catch {
            preconditionFailure("IPCMessage.decode threw a non-IPCError: \(error)")
        }
        precondition(message.kind == frame.kind, "\(message) decoded from a \(frame.kind) frame")
        let body = message.body()
        precondition(body == frame.body, "\(message) re-encodes to \(body.readableBytes) bytes, not its \(frame.body.readableBytes)-byte body")
        precondition((try? IPCMessage.decode(message.frame(requestId: frame.requestId))) == message,
                     "\(message) does not decode from its own encoding")
    }
    return 0
}
