import SwiftletRouting
import Atomics
import NIOCore

/// Subscription changes applied to every loop's trie replica. A SUBACK is sent only after
/// every replica has the change, so a publish that follows it on any connection sees it.
final class Router: @unchecked Sendable {
    private let table: LoopTable
    let subscriptionCount = ManagedAtomic<Int>(0)

    init(table: LoopTable) { self.table = table }

    func subscribe(_ session: Session, _ filter: ParsedFilter, _ options: SubscriptionOptions, on loop: EventLoop) -> EventLoopFuture<Void> {
        let entry = SubscriberEntry(session: session, options: options)
        var added = false
        let futures = table.loops.map { ctx -> EventLoopFuture<Void> in
            if ctx.eventLoop.inEventLoop {
                if !ctx.trie.insert(filter, entry: entry) { added = true }
                return ctx.eventLoop.makeSucceededVoidFuture()
            }
            return ctx.eventLoop.submit { _ = ctx.trie.insert(filter, entry: entry) }
        }
        if added { subscriptionCount.wrappingIncrement(ordering: .relaxed) }
        return EventLoopFuture.andAllSucceed(futures, on: loop)
    }

    func unsubscribe(_ session: Session, _ filter: ParsedFilter, on loop: EventLoop) -> EventLoopFuture<Void> {
        var removed = false
        let futures = table.loops.map { ctx -> EventLoopFuture<Void> in
            if ctx.eventLoop.inEventLoop {
                if ctx.trie.remove(filter, session: session) { removed = true }
                return ctx.eventLoop.makeSucceededVoidFuture()
            }
            return ctx.eventLoop.submit { _ = ctx.trie.remove(filter, session: session) }
        }
        if removed { subscriptionCount.wrappingDecrement(ordering: .relaxed) }
        return EventLoopFuture.andAllSucceed(futures, on: loop)
    }
}
