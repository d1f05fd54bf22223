import SwiftletAuth
import MQTTCodec
import NIOCore

extension MQTTConnectionHandler {
    /// The connection's own cached answer, nil on a miss. Superusers bypass ACL.
    func cachedACL(_ access: ACLAccess, _ topic: String) -> Bool? {
        if superuser { return true }
        let gen = broker.auth.authzCache.generation.load(ordering: .relaxed)
        if gen != aclCacheGeneration {
            aclCache.removeAll(keepingCapacity: true)
            aclCacheGeneration = gen
        }
        if let e = aclCache[aclKey(access, topic)], e.expires > eventLoop.now {
            ctx.stats.countACLHit(slot: e.slot)
            return e.allowed
        }
        return nil
    }

    private func aclKey(_ access: ACLAccess, _ topic: String) -> ACLCacheKey {
        ACLCacheKey(access: access, topic: UTF8Key(topic))
    }

    /// Keeps an answer as long as the chain allows (never the fallback after an error).
    ///
    /// Publish answers only: the cache is for the per-message path, and a client subscribes
    /// to a filter about once per session. A subscribe answer kept here was a dictionary per
    /// subscribed connection (~135 B of heap with one subscription); it is still kept in the
    /// chain's shared cache (`auth.cache_size`).
    private func rememberACL(_ access: ACLAccess, _ topic: String, _ answer: ACLAnswer) {
        let cfg = broker.config.auth
        guard access == .publish, cfg.connectionCacheSize > 0, answer.ttl > .zero else { return }
        if aclCache.count >= cfg.connectionCacheSize { aclCache.removeAll(keepingCapacity: true) }
        aclCache[aclKey(access, topic)] = (answer.allowed, eventLoop.now + answer.ttl, answer.providerSlot)
    }

    /// Calls `body` with the ACL decision: at once on a cache hit, else after the chain
    /// answered, holding back every later packet of this connection meanwhile (order kept).
    func withACL(_ access: ACLAccess, _ topic: String, _ body: @escaping (Bool) -> Void) {
        if let d = cachedACL(access, topic) { return body(d) }
        if let answer = broker.auth.authorizeNow(clientInfo, access: access, topic: topic) {
            rememberACL(access, topic, answer)
            return body(answer.allowed)
        }
        paused = true
        broker.auth.authorize(clientInfo, access: access, topic: topic, on: eventLoop).whenComplete { [self] result in
            let answer = (try? result.get()) ?? ACLAnswer(allowed: broker.config.auth.fallbackAllow, ttl: .zero)
            rememberACL(access, topic, answer)
            let allowed = answer.allowed
            paused = false
            guard state == .connected else { return }
            body(allowed)
            resumePending()
        }
    }

    /// Processes packets held back while an answer was awaited.
    func resumePending() {
        while !paused, state == .connected, !pending.isEmpty {
            handle(pending.removeFirst())
        }
        flushIfDirty()
    }

    /// Decisions for several topics, in order. A loop, not a recursion: cached answers come
    /// back synchronously, and one SUBSCRIBE may hold tens of thousands of filters (a
    /// recursion per filter overflowed the event loop's stack at a few thousand).
    func withACL(_ access: ACLAccess, _ topics: [String?], _ body: @escaping ([Bool]) -> Void) {
        final class Answers { var list: [Bool] = [] }
        let answers = Answers()
        answers.list.reserveCapacity(topics.count)
        func resume() {
            while answers.list.count < topics.count {
                guard let t = topics[answers.list.count] else { answers.list.append(true); continue }
                var answered = false, suspended = false
                withACL(access, t) { allowed in
                    answers.list.append(allowed)
                    if suspended { resume() } else { answered = true }
                }
                if !answered { suspended = true; return }
            }
            body(answers.list)
        }
        resume()
    }
}

/// A key of the per-connection ACL cache: the topic string is shared, not copied, so a
/// lookup allocates nothing. Topics compare by their bytes (`UTF8Key`): an answer for one
/// topic never stands for a canonically equal but different one [MQTT-4.7.3-4].
struct ACLCacheKey: Hashable {
    let access: ACLAccess
    let topic: UTF8Key
}
