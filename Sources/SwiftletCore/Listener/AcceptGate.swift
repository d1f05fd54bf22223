import Atomics
import NIOCore

/// The first handler of a listener's server channel: sees each accepted socket before NIO
/// registers it or runs the child initializer, and closes those over `max_connections` or
/// over the connection rate there, so no TLS handshake, HTTP parse or CONNECT is ever read
/// for them (the server channel's loop only: no lock).
final class AcceptGate: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = Channel
    typealias InboundOut = Channel

    let listener: ListenerState
    private var bucket: TokenBucket?
    /// The rate `bucket` was made for: a reload that changes it starts a new bucket.
    private var rate: Int

    init(listener: ListenerState, now: NIODeadline) {
        self.listener = listener
        rate = listener.maxConnRate.load(ordering: .relaxed)
        bucket = Self.bucket(rate: rate, now: now)
    }

    private static func bucket(rate: Int, now: NIODeadline) -> TokenBucket? {
        rate > 0 ? TokenBucket(rate: Double(rate), burst: Double(rate), now: now.uptimeNanoseconds) : nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let child = unwrapInboundIn(data)
        let maxConnections = listener.maxConnections.load(ordering: .relaxed)
        if listener.current.load(ordering: .relaxed) >= maxConnections {
            return refuse(child, .maxConnections, "max_connections (\(maxConnections)) reached")
        }
        let now = context.eventLoop.now
        let rate = listener.maxConnRate.load(ordering: .relaxed)
        if rate != self.rate {
            self.rate = rate
            bucket = Self.bucket(rate: rate, now: now)
        }
        if bucket?.take(now: now.uptimeNanoseconds) == false {
            return refuse(child, .rate, "over max_conn_rate (\(rate)/s)")
        }
        listener.current.wrappingIncrement(ordering: .relaxed)
        listener.accepted.wrappingIncrement(ordering: .relaxed)
        listener.countOpen(until: child)
        context.fireChannelRead(data)
    }

    /// Closed unregistered, as NIO's own accept handler closes a child whose setup failed.
    private func refuse(_ child: Channel, _ why: ListenerState.Refusal, _ detail: String) {
        listener.refused(why, peer: child.remoteAddress, detail: detail)
        child.close(promise: nil)
    }
}

/// Tokens refill at `rate` per second up to `burst`; each connection takes one. Time in
/// monotonic nanoseconds, passed in (tests use a manual clock).
struct TokenBucket {
    let rate: Double
    let burst: Double
    private var tokens: Double
    private var last: UInt64

    init(rate: Double, burst: Double, now: UInt64) {
        self.rate = rate
        self.burst = max(1, burst)
        self.tokens = self.burst
        self.last = now
    }

    mutating func take(now: UInt64) -> Bool {
        if now > last {
            tokens = min(burst, tokens + Double(now - last) / 1e9 * rate)
            last = now
        }
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }
}
