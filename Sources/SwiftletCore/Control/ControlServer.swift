import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// The control socket `swiftlet-ctl` talks to: a Unix domain socket (mode 0600), one JSON
/// request per line, one JSON reply per line, in order.
public final class ControlServer: BrokerPart, @unchecked Sendable {
    public let name = "ctl"
    private let lock = NIOLock()
    private var channel: Channel?
    private let path: String
    private let registry: ControlRegistry
    private let group: EventLoopGroup
    private let logger: Logger
    /// How long a command may take before the client is told it failed.
    static let commandTimeout = TimeAmount.seconds(60)

    init(path: String, registry: ControlRegistry, group: EventLoopGroup, logger: Logger) {
        self.path = path
        self.registry = registry
        self.group = group
        self.logger = logger
    }

    public func start() async throws {
        let registry = self.registry
        let dir = (path as NSString).deletingLastPathComponent
        if !dir.isEmpty { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        var log = logger
        log[metadataKey: "component"] = "ctl"
        let connLogger = log
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 64)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ControlConnection(registry: registry, logger: connLogger))
                }
            }
        // Umask first so the socket never exists with wider permissions than 0600.
        let old = umask(0o177)
        defer { umask(old) }
        let ch = try await bootstrap.bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true).get()
        chmod(path, 0o600)
        lock.withLock { channel = ch }
        log.info("ctl socket listening", metadata: ["ctl.socket": "\(path)"])
    }

    public func stop() async {
        let ch = lock.withLock { () -> Channel? in
            defer { channel = nil }
            return channel
        }
        guard let ch else { return }
        try? await ch.close()
        unlink(path)
    }
}

/// One ctl client: splits lines (bounded), runs one command at a time, answers in order.
final class ControlConnection: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let registry: ControlRegistry
    let logger: Logger
    private var buffer: ByteBuffer?
    private var lines: [[UInt8]] = []
    private var busy = false
    private var closed = false
    private var idleTask: Scheduled<Void>?
    /// A connection that sends nothing for this long (and waits for nothing) is closed.
    static let idleTimeout = TimeAmount.minutes(5)

    init(registry: ControlRegistry, logger: Logger) {
        self.registry = registry
        self.logger = logger
    }

    func channelActive(context: ChannelHandlerContext) {
        armIdle(context: context)
        context.fireChannelActive()
    }

    private func armIdle(context: ChannelHandlerContext) {
        idleTask?.cancel()
        idleTask = context.eventLoop.scheduleTask(in: Self.idleTimeout) { [weak self] in
            guard let self, !self.closed else { return }
            if self.busy { return self.armIdle(context: context) }
            self.closed = true
            context.close(promise: nil)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        if closed { return }
        armIdle(context: context)
        if buffer == nil { buffer = incoming } else { buffer!.writeBuffer(&incoming) }
        while let view = buffer?.readableBytesView, let nl = view.firstIndex(of: UInt8(ascii: "\n")) {
            let length = nl - view.startIndex
            var line = buffer!.readBytes(length: length)!
            buffer!.moveReaderIndex(forwardBy: 1)
            if line.last == UInt8(ascii: "\r") { line.removeLast() }
            if line.count > ControlWire.maxRequestBytes { return refuseTooLong(context: context) }
            if !line.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { lines.append(line) }
        }
        if let b = buffer {
            if b.readableBytes > ControlWire.maxRequestBytes { return refuseTooLong(context: context) }
            if b.readableBytes == 0 { buffer = nil } else if b.readerIndex > 65_536 { buffer!.discardReadBytes() }
        }
        if lines.count > 64 {
            logger.info("ctl client sent too many requests at once; closing")
            closed = true
            context.close(promise: nil)
            return
        }
        next(context: context)
    }

    private func refuseTooLong(context: ChannelHandlerContext) {
        closed = true
        lines.removeAll()
        buffer = nil
        logger.info("ctl request line too long; closing", metadata: ["ctl.max_bytes": "\(ControlWire.maxRequestBytes)"])
        let reply = ControlReply(status: ControlReply.usageError,
                                 text: "request line longer than \(ControlWire.maxRequestBytes) bytes")
        write(reply, context: context)
        context.close(promise: nil)
    }

    private func next(context: ChannelHandlerContext) {
        guard !busy, !closed, !lines.isEmpty else { return }
        let line = lines.removeFirst()
        let loop = context.eventLoop
        let future: EventLoopFuture<ControlReply>
        switch ControlWire.parseRequest(line) {
        case .failure(let e):
            logger.debug("bad ctl request", metadata: ["error": "\(e)"])
            future = loop.makeSucceededFuture(ControlReply(status: ControlReply.usageError, text: "bad request: \(e)"))
        case .success(let req):
            logger.debug("ctl command", metadata: ["ctl.command": "\(req.command)"])
            future = withTimeout(registry.dispatch(req.command, args: req.args, on: loop), command: req.command, loop: loop)
        }
        busy = true
        future.whenComplete { [self] result in
            busy = false
            guard !closed, context.channel.isActive else { return }
            let reply = (try? result.get()) ?? ControlReply(status: ControlReply.failed, text: "command failed")
            write(reply, context: context)
            next(context: context)
        }
    }

    private func withTimeout(_ f: EventLoopFuture<ControlReply>, command: String, loop: EventLoop) -> EventLoopFuture<ControlReply> {
        let p = loop.makePromise(of: ControlReply.self)
        final class Once { var done = false }
        let once = Once()
        let timer = loop.scheduleTask(in: ControlServer.commandTimeout) {
            guard !once.done else { return }
            once.done = true
            p.succeed(ControlReply(status: ControlReply.failed, text: "\(command): no answer within \(ControlServer.commandTimeout.nanoseconds / 1_000_000_000)s"))
        }
        f.whenComplete { result in
            timer.cancel()
            guard !once.done else { return }
            once.done = true
            switch result {
            case .success(let r): p.succeed(r)
            case .failure(let e): p.succeed(ControlReply(status: ControlReply.failed, text: "\(command) failed: \(e)"))
            }
        }
        return p.futureResult
    }

    private func write(_ reply: ControlReply, context: ChannelHandlerContext) {
        let text = ControlWire.encodeReply(reply)
        var out = context.channel.allocator.buffer(capacity: text.utf8.count)
        out.writeString(text)
        context.writeAndFlush(wrapOutboundOut(out), promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        closed = true
        idleTask?.cancel()
        idleTask = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        logger.debug("ctl connection error", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }
}
