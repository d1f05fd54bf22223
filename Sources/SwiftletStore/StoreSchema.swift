import SwiftletConfig
import SwiftletRouting
import Foundation
import MQTTCodec
import NIOCore

/// What the store held at start: retained messages and persistent sessions.
public struct StoreSnapshot {
    public struct StoredMessage {
        public var message: Message
        public var qos: QoS
        public var retainFlag: Bool
        public var subscriptionIds: [Int]
        /// 0 queued, 1 sent (awaiting PUBACK/PUBREC), 2 released (awaiting PUBCOMP).
        public var state: Int
        public var packetId: UInt16
    }

    public struct SessionRecord {
        public var clientId: String
        public var expiry: UInt32
        public var version: UInt8
        /// Unix ms of the disconnect; nil when it was connected when the broker stopped.
        public var disconnectedAt: Int64?
        public var will: Will?
        public var willAt: Int64
        public var subscriptions: [(String, SubscriptionOptions)] = []
        public var messages: [StoredMessage] = []
        public var awaitingRel: [UInt16] = []
    }

    public var retained: [Message] = []
    public var sessions: [SessionRecord] = []
    /// Unix ms of the last commit: the latest moment the broker was known alive.
    public var lastAlive: Int64?
    public var maxMessageId: Int64 = 0
}

/// Tables, the application of ops, and loading. Schema version 1 (PRAGMA user_version).
public enum StoreSchema {
    static let version: Int64 = 1

    static let ddl = """
    CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER);
    CREATE TABLE IF NOT EXISTS retained(topic TEXT PRIMARY KEY, qos INTEGER, payload BLOB, props BLOB,
        expiry_at INTEGER, origin TEXT);
    CREATE TABLE IF NOT EXISTS sessions(client_id TEXT PRIMARY KEY, expiry INTEGER, version INTEGER,
        disconnected_at INTEGER, will_topic TEXT, will_qos INTEGER, will_retain INTEGER, will_payload BLOB,
        will_props BLOB, will_at INTEGER);
    CREATE TABLE IF NOT EXISTS subscriptions(client_id TEXT, filter TEXT, options INTEGER, sub_id INTEGER,
        PRIMARY KEY(client_id, filter));
    CREATE TABLE IF NOT EXISTS messages(id INTEGER PRIMARY KEY, topic TEXT, qos INTEGER, retain INTEGER,
        payload BLOB, props BLOB, expiry_at INTEGER, origin TEXT);
    CREATE TABLE IF NOT EXISTS session_messages(seq INTEGER PRIMARY KEY AUTOINCREMENT, client_id TEXT,
        message_id INTEGER, qos INTEGER, retain_flag INTEGER, sub_ids TEXT, state INTEGER, packet_id INTEGER,
        UNIQUE(client_id, message_id));
    CREATE INDEX IF NOT EXISTS session_messages_msg ON session_messages(message_id);
    CREATE TABLE IF NOT EXISTS awaiting_rel(client_id TEXT, packet_id INTEGER, PRIMARY KEY(client_id, packet_id));
    """

    public static func nowMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    static func heartbeat(_ db: SQLiteDatabase, at: Date) throws {
        try db.run("INSERT OR REPLACE INTO meta(key, value) VALUES('last_alive', ?)", [.int(Int64(at.timeIntervalSince1970 * 1000))])
    }

    // MARK: Encoding helpers

    static func props(_ p: Properties) -> SQLiteValue {
        guard !p.isEmpty else { return .null }
        var b = ByteBuffer()
        p.write(into: &b)
        return .blob(Array(b.readableBytesView))
    }

    static func readProps(_ bytes: [UInt8], context: PropertyContext) -> Properties {
        guard !bytes.isEmpty else { return Properties() }
        var b = ByteBuffer(bytes: bytes)
        return (try? Properties.read(from: &b, context: context)) ?? Properties()
    }

    static func expiryAt(_ m: Message, nowWall: Int64, now: NIODeadline) -> SQLiteValue {
        guard let r = m.remainingExpiry(now: now) else { return .null }
        return .int(nowWall + Int64(r) * 1000)
    }

    static func optionsByte(_ o: SubscriptionOptions) -> Int64 {
        Int64(o.qos.rawValue) | (o.noLocal ? 4 : 0) | (o.retainAsPublished ? 8 : 0) | (Int64(o.retainHandling.rawValue) << 4)
    }

    static func options(_ v: Int64, subId: Int?) -> SubscriptionOptions {
        SubscriptionOptions(qos: QoS(rawValue: UInt8(v & 3)) ?? .atMostOnce, noLocal: v & 4 != 0,
                            retainAsPublished: v & 8 != 0,
                            retainHandling: RetainHandling(rawValue: UInt8((v >> 4) & 3)) ?? .sendOnSubscribe,
                            subscriptionIdentifier: subId)
    }

    // MARK: Apply

    static func apply(_ op: StoreOp, _ db: SQLiteDatabase) throws {
        switch op {
        case .session(let id, let expiry, let version):
            try db.run("""
                INSERT INTO sessions(client_id, expiry, version) VALUES(?, ?, ?)
                ON CONFLICT(client_id) DO UPDATE SET expiry = excluded.expiry, version = excluded.version,
                disconnected_at = NULL, will_topic = NULL, will_payload = NULL, will_props = NULL
                """, [.text(id), .int(Int64(expiry)), .int(Int64(version))])
        case .sessionGone(let id):
            try db.run("DELETE FROM sessions WHERE client_id = ?", [.text(id)])
            try db.run("DELETE FROM subscriptions WHERE client_id = ?", [.text(id)])
            try db.run("DELETE FROM awaiting_rel WHERE client_id = ?", [.text(id)])
            try db.run("DELETE FROM session_messages WHERE client_id = ?", [.text(id)])
            try db.run("DELETE FROM messages WHERE NOT EXISTS (SELECT 1 FROM session_messages s WHERE s.message_id = messages.id)")
        case .sessionOffline(let id, let at, let expiry, let will, let willAt):
            if let w = will {
                try db.run("""
                    UPDATE sessions SET disconnected_at = ?, expiry = ?, will_topic = ?, will_qos = ?, will_retain = ?,
                    will_payload = ?, will_props = ?, will_at = ? WHERE client_id = ?
                    """, [.int(at), .int(Int64(expiry)), .text(w.topic), .int(Int64(w.qos.rawValue)), .int(w.retain ? 1 : 0),
                          .blob(Array(w.payload.readableBytesView)), props(w.properties), .int(willAt), .text(id)])
            } else {
                try db.run("UPDATE sessions SET disconnected_at = ?, expiry = ? WHERE client_id = ?",
                           [.int(at), .int(Int64(expiry)), .text(id)])
            }
        case .willDone(let id):
            try db.run("UPDATE sessions SET will_topic = NULL, will_payload = NULL, will_props = NULL WHERE client_id = ?", [.text(id)])
        case .subscribe(let id, let filter, let o):
            try db.run("INSERT OR REPLACE INTO subscriptions(client_id, filter, options, sub_id) VALUES(?, ?, ?, ?)",
                       [.text(id), .text(filter), .int(optionsByte(o)), o.subscriptionIdentifier.map { .int(Int64($0)) } ?? .null])
        case .unsubscribe(let id, let filter):
            try db.run("DELETE FROM subscriptions WHERE client_id = ? AND filter = ?", [.text(id), .text(filter)])
        case .enqueue(let id, let m, let qos, let retainFlag, let subIds):
            try db.run("""
                INSERT OR IGNORE INTO messages(id, topic, qos, retain, payload, props, expiry_at, origin)
                VALUES(?, ?, ?, ?, ?, ?, ?, ?)
                """, [.int(m.storeId), .text(m.topic), .int(Int64(m.qos.rawValue)), .int(m.retain ? 1 : 0),
                      .blob(Array(m.payload.readableBytesView)), props(m.properties),
                      m.expiryAtWall.map { .int($0) } ?? .null, .text(m.origin)])
            try db.run("""
                INSERT OR IGNORE INTO session_messages(client_id, message_id, qos, retain_flag, sub_ids, state, packet_id)
                VALUES(?, ?, ?, ?, ?, 0, 0)
                """, [.text(id), .int(m.storeId), .int(Int64(qos.rawValue)), .int(retainFlag ? 1 : 0),
                      .text(subIds.map(String.init).joined(separator: ","))])
        case .sent(let id, let mid, let pid):
            try db.run("UPDATE session_messages SET state = 1, packet_id = ? WHERE client_id = ? AND message_id = ?",
                       [.int(Int64(pid)), .text(id), .int(mid)])
        case .released(let id, let mid):
            try db.run("UPDATE session_messages SET state = 2 WHERE client_id = ? AND message_id = ?", [.text(id), .int(mid)])
        case .done(let id, let mid):
            try db.run("DELETE FROM session_messages WHERE client_id = ? AND message_id = ?", [.text(id), .int(mid)])
            try db.run("DELETE FROM messages WHERE id = ? AND NOT EXISTS (SELECT 1 FROM session_messages WHERE message_id = ?)",
                       [.int(mid), .int(mid)])
        case .awaitRel(let id, let pid):
            try db.run("INSERT OR IGNORE INTO awaiting_rel(client_id, packet_id) VALUES(?, ?)", [.text(id), .int(Int64(pid))])
        case .rel(let id, let pid):
            try db.run("DELETE FROM awaiting_rel WHERE client_id = ? AND packet_id = ?", [.text(id), .int(Int64(pid))])
        case .retain(let m):
            try db.run("INSERT OR REPLACE INTO retained(topic, qos, payload, props, expiry_at, origin) VALUES(?, ?, ?, ?, ?, ?)",
                       [.text(m.topic), .int(Int64(m.qos.rawValue)), .blob(Array(m.payload.readableBytesView)),
                        props(m.properties), m.expiryAtWall.map { .int($0) } ?? .null, .text(m.origin)])
        case .unretain(let topic):
            try db.run("DELETE FROM retained WHERE topic = ?", [.text(topic)])
        }
    }

    // MARK: Load

    static func message(topic: String, qos: Int64, retain: Bool, payload: [UInt8], props: [UInt8], expiryAt: Int64?,
                        origin: String, id: Int64, nowWall: Int64, now: NIODeadline) -> Message? {
        var expiry: UInt32?
        if let at = expiryAt {
            let left = (at - nowWall) / 1000
            if left <= 0 { return nil }
            expiry = UInt32(clamping: left)
        }
        let p = readProps(props, context: .publish)
        let m = Message(topic: topic, payload: ByteBuffer(bytes: payload), qos: QoS(rawValue: UInt8(qos & 3)) ?? .atLeastOnce,
                        retain: retain, properties: p, expiryInterval: expiry, origin: origin,
                        v5Wire: !p.isEmpty || expiry != nil, now: now)
        m.storeId = id
        return m
    }

    static func load(_ db: SQLiteDatabase) throws -> StoreSnapshot {
        var snap = StoreSnapshot()
        let nowWall = nowMs()
        let now = NIODeadline.now()
        try db.query("SELECT value FROM meta WHERE key = 'last_alive'") { snap.lastAlive = $0.int(0) }
        try db.query("SELECT topic, qos, payload, props, expiry_at, origin FROM retained") { r in
            if let m = message(topic: r.text(0), qos: r.int(1), retain: true, payload: r.blob(2), props: r.blob(3),
                               expiryAt: r.isNull(4) ? nil : r.int(4), origin: r.text(5), id: 0, nowWall: nowWall, now: now) {
                snap.retained.append(m)
            }
        }
        var index: [String: Int] = [:]
        try db.query("""
            SELECT client_id, expiry, version, disconnected_at, will_topic, will_qos, will_retain, will_payload,
            will_props, will_at FROM sessions
            """) { r in
            var s = StoreSnapshot.SessionRecord(clientId: r.text(0), expiry: UInt32(clamping: r.int(1)),
                                                version: UInt8(clamping: r.int(2)),
                                                disconnectedAt: r.isNull(3) ? nil : r.int(3), will: nil, willAt: r.int(9))
            if !r.isNull(4) {
                s.will = Will(topic: r.text(4), payload: ByteBuffer(bytes: r.blob(7)),
                              qos: QoS(rawValue: UInt8(r.int(5) & 3)) ?? .atMostOnce, retain: r.int(6) != 0,
                              properties: readProps(r.blob(8), context: .will))
            }
            index[s.clientId] = snap.sessions.count
            snap.sessions.append(s)
        }
        try db.query("SELECT client_id, filter, options, sub_id FROM subscriptions") { r in
            guard let i = index[r.text(0)] else { return }
            snap.sessions[i].subscriptions.append((r.text(1), options(r.int(2), subId: r.isNull(3) ? nil : Int(r.int(3)))))
        }
        try db.query("SELECT client_id, packet_id FROM awaiting_rel") { r in
            guard let i = index[r.text(0)] else { return }
            snap.sessions[i].awaitingRel.append(UInt16(clamping: r.int(1)))
        }
        var messages: [Int64: Message] = [:]
        try db.query("""
            SELECT s.client_id, s.qos, s.retain_flag, s.sub_ids, s.state, s.packet_id,
            m.id, m.topic, m.qos, m.retain, m.payload, m.props, m.expiry_at, m.origin
            FROM session_messages s JOIN messages m ON m.id = s.message_id ORDER BY s.seq
            """) { r in
            guard let i = index[r.text(0)] else { return }
            let mid = r.int(6)
            let msg: Message
            if let m = messages[mid] { msg = m } else {
                guard let m = message(topic: r.text(7), qos: r.int(8), retain: r.int(9) != 0, payload: r.blob(10),
                                      props: r.blob(11), expiryAt: r.isNull(12) ? nil : r.int(12), origin: r.text(13),
                                      id: mid, nowWall: nowWall, now: now) else { return }
                messages[mid] = m
                msg = m
            }
            let subIds = r.text(3).split(separator: ",").compactMap { Int($0) }
            snap.sessions[i].messages.append(.init(message: msg, qos: QoS(rawValue: UInt8(r.int(1) & 3)) ?? .atLeastOnce,
                                                   retainFlag: r.int(2) != 0, subscriptionIds: subIds,
                                                   state: Int(r.int(4)), packetId: UInt16(clamping: r.int(5))))
        }
        try db.query("SELECT COALESCE(MAX(id), 0) FROM messages") { snap.maxMessageId = $0.int(0) }
        return snap
    }
}
