import SwiftletRouting
import SwiftletConfig
import Foundation
import Logging
import MQTTCodec
import NIOConcurrencyHelpers
import NIOCore

/// The file-backed store: one SQLite database (WAL) written by one dedicated thread, never
/// by an event loop. Event loops submit `StoreOp`s; a submission with a promise is completed
/// once its ops are committed, which is when a PUBACK/PUBREC may be sent.
public final class DurableStore: @unchecked Sendable {
    public let mode: DurabilityMode
    public let path: String
    public let commitInterval: TimeInterval
    public let logger: Logger
    private let cond = ConditionLock(value: 0)
    private var pending: [StoreOp] = []
    private var waiters: [EventLoopPromise<Void>] = []
    /// The pending batch's promise for each event loop that waits on it (see `submit(_:on:)`).
    private var loopWaiters: [ObjectIdentifier: EventLoopPromise<Void>] = [:]
    private var stopping = false
    private var stopped = false
    private var thread: Thread?
    private var db: SQLiteDatabase?
    private var lastHeartbeat = Date.distantPast
    /// Counters read by $SYS (approximate, written by the writer thread under the lock).
    private(set) var commits = 0
    private(set) var failures = 0

    public init(path: String, mode: DurabilityMode, commitInterval: TimeInterval, logger: Logger) {
        self.path = path
        self.mode = mode
        self.commitInterval = commitInterval
        self.logger = logger
    }

    /// Opens (salvaging a damaged file) and loads everything for restart. Call once, before `start`.
    public func openAndLoad() throws -> StoreSnapshot {
        let db = try StoreFile.open(path: path, logger: logger)
        self.db = db
        return try StoreSchema.load(db)
    }

    public func start() {
        let t = Thread { [self] in self.run() }
        t.name = "swiftlet-store"
        thread = t
        t.start()
    }

    /// Stops after committing everything already submitted.
    public func stop() {
        cond.lock()
        stopping = true
        cond.unlock(withValue: 1)
        while true {
            cond.lock()
            let done = stopped
            cond.unlock()
            if done || thread == nil { break }
            usleep(2000)
        }
        db?.close()
    }

    /// Submits ops; `promise` (if any) completes when they are committed.
    public func submit(_ ops: [StoreOp], promise: EventLoopPromise<Void>? = nil) {
        cond.lock()
        if stopped {
            cond.unlock()
            promise?.fail(SQLiteError(code: -1, message: "store stopped"))
            return
        }
        pending.append(contentsOf: ops)
        if let promise { waiters.append(promise) }
        cond.unlock(withValue: 1)
    }

    public func submit(_ op: StoreOp) { submit([op]) }

    /// Submits ops and returns a future, completed on `loop`, that succeeds once they are
    /// committed. Every submission from one loop into the same batch gets the same future,
    /// so a commit completes one promise per loop (one task on each loop) however many
    /// acknowledgements waited for it. A promise per PUBLISH made the writer post a task per
    /// acknowledgement after each commit, and a loop runs every queued task before it reads
    /// again: after a slow fsync, thousands of them held up reading and delivering.
    public func submit(_ ops: [StoreOp], on loop: any EventLoop) -> EventLoopFuture<Void> {
        cond.lock()
        if stopped {
            cond.unlock()
            return loop.makeFailedFuture(SQLiteError(code: -1, message: "store stopped"))
        }
        pending.append(contentsOf: ops)
        let key = ObjectIdentifier(loop)
        let promise: EventLoopPromise<Void>
        if let p = loopWaiters[key] {
            promise = p
        } else {
            promise = loop.makePromise(of: Void.self)
            loopWaiters[key] = promise
            waiters.append(promise)
        }
        cond.unlock(withValue: 1)
        return promise.futureResult
    }

    private func run() {
        while true {
            // Wait for work, or a second for the heartbeat.
            let woke = cond.lock(whenValue: 1, timeoutSeconds: 1.0)
            if !woke { cond.lock() }
            if mode == .batched && !pending.isEmpty && !stopping {
                // Group commit: let the batch fill for commit_interval.
                cond.unlock()
                Thread.sleep(forTimeInterval: commitInterval)
                cond.lock()
            }
            let ops = pending
            let ws = waiters
            pending = []
            waiters = []
            loopWaiters.removeAll(keepingCapacity: true)
            let exiting = stopping
            cond.unlock(withValue: 0)

            if !ops.isEmpty || Date().timeIntervalSince(lastHeartbeat) >= 1 {
                commit(ops, waiters: ws)
            } else {
                for w in ws { w.succeed(()) }
            }
            if exiting {
                cond.lock()
                let more = !pending.isEmpty
                cond.unlock()
                if more { continue }
                cond.lock()
                stopped = true
                cond.unlock()
                return
            }
        }
    }

    private func commit(_ ops: [StoreOp], waiters: [EventLoopPromise<Void>]) {
        guard let db else {
            for w in waiters { w.succeed(()) }
            return
        }
        do {
            try db.exec("BEGIN IMMEDIATE")
            do {
                for op in StoreOp.coalesced(ops) { try StoreSchema.apply(op, db) }
                let now = Date()
                try StoreSchema.heartbeat(db, at: now)
                lastHeartbeat = now
                try db.exec("COMMIT")
            } catch {
                try? db.exec("ROLLBACK")
                throw error
            }
            commits += 1
            for w in waiters { w.succeed(()) }
        } catch {
            failures += 1
            logger.error("store commit failed; acknowledgements withheld", metadata: ["error": "\(error)", "store.path": "\(path)"])
            for w in waiters { w.fail(error) }
        }
    }
}
