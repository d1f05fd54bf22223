import CSwiftletSys
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOPosix

/// Connection parking (docs/decisions/0009, EMQX's hibernation of idle connections): a
/// plain-TCP client idle for `mqtt.park_after` seconds keeps its MQTT state (this handler,
/// its session) but gives its SwiftNIO channel back; its socket waits in the broker's
/// `ParkingLot`. A byte from the client, a message for it, its keep alive expiring or the
/// broker closing it gets it a new channel first, so nothing about the connection changes
/// for the client or the rest of the broker.
extension MQTTConnectionHandler {
    /// Called by each sweep that had nothing else to do.
    @inline(__always)
    func considerParking() {
        if activeSinceSweep {
            activeSinceSweep = false
            idleSweeps = 0
            return
        }
        if idleSweeps < .max { idleSweeps += 1 }
        // Cheapest first: a parked or never parkable connection reads no configuration.
        guard !parkRefused, !(transport is ParkedSocket) else { return }
        let after = config.parkAfter
        guard after > 0, Double(idleSweeps) * Self.sweepSeconds >= after else { return }
        park()
    }

    static let sweepSeconds = Double(ConnectionSweep.period.nanoseconds) / 1e9

    /// Whether the connection holds nothing in flight that its channel would have to carry:
    /// connected, no packet waiting for an answer or the store, nothing unsent or half read,
    /// no message in flight or queued for it.
    var isQuiescent: Bool {
        guard state == .connected, !paused, pending.isEmpty, acks.isEmpty, awaitedCommit == nil,
              pendingOut == nil, !needsFlush, framer.pendingBytes == 0, !decodeFailed, !traced,
              let s = session, s.outbound.inflightCount == 0, s.outbound.queue.isEmpty else { return false }
        return true
    }

    /// Parks the connection if it can be: plain TCP (a TLS or WebSocket connection's state
    /// lives in its channel), quiescent, and its socket's descriptor known.
    func park() {
        // A gateway session, a TLS or WebSocket connection: never.
        guard listener.config.kind == .tcp, let context = transport as? ChannelHandlerContext else {
            parkRefused = true
            return
        }
        guard isQuiescent, context.channel.isActive, context.channel.isWritable else { return }
        let channel = context.channel
        guard let fd = ChannelDescriptor.of(channel) else {
            parkRefused = true
            return
        }
        let copy = swiftlet_dup_cloexec(fd)
        guard copy >= 0 else {
            logger.debug("not parked: dup failed", metadata: ["errno": "\(errno)"])
            return
        }
        // No reference to the channel's addresses is kept: they were allocated with the channel
        // on the accepting loop, and one live object per connection there keeps the pages of
        // every freed channel around it from going back to the system.
        let parked = ParkedSocket(fd: copy, handler: self)
        guard broker.parkingLot.add(parked) else {
            _ = Glibc.close(copy)
            parkRefused = true
            return
        }
        transport = parked
        // The accept gate counts the connection out when this channel closes; it stays open.
        listener.current.wrappingIncrement(ordering: .relaxed)
        // NIO deregisters and closes its descriptor; the socket lives on in `copy`. The
        // channel's inactive and removed events no longer reach the connection (`transport`
        // is not their context).
        channel.close(promise: nil)
    }

    /// Gives a parked connection a new channel on its loop, with the options and pipeline of
    /// an accepted plain-TCP connection (any PROXY header was read at accept).
    func unpark(_ parked: ParkedSocket) {
        guard transport === parked, parked.state == .parked else { return }
        broker.parkingLot.remove(parked)
        parked.beginWaking()
        idleSweeps = 0
        let listener = self.listener
        guard let bootstrap = ClientBootstrap(validatingGroup: eventLoop) else {
            return unparkFailed(parked, ChannelError.operationUnsupported)
        }
        bootstrap
            .channelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try Listeners.setChildOptions(channel)
                    try channel.pipeline.syncOperations.addHandler(self)
                }
            }
            .withConnectedSocket(parked.fd)
            .whenComplete { [self] result in
                switch result {
                case .success(let channel):
                    // The count the parked socket carried moves to the new channel.
                    listener.countOpen(until: channel)
                case .failure(let error):
                    unparkFailed(parked, error)
                }
            }
    }

    /// No channel: the connection is lost as if its socket had closed.
    private func unparkFailed(_ parked: ParkedSocket, _ error: Error) {
        logger.info("parked connection could not be resumed", metadata: ["error": "\(error)"])
        parked.failed()
        listener.current.wrappingDecrement(ordering: .relaxed)
        guard transport === parked else { return }
        connectionLost()
        transport = nil
        pendingOut = nil
    }
}
