import MQTTCodec
import Atomics
import Foundation
import NIOConcurrencyHelpers

/// Clients refused at CONNECT (CONNACK 0x8A, or 5 for 3.x) by client id, user name or peer
/// address, as EMQX's banned table: `swiftlet-ctl banned` and `/api/v5/banned`. Kept in
/// `<data_dir>/banned.json` (written atomically on each change) so a restart keeps them.
/// The CONNECT path reads one atomic when the list is empty.
public final class BannedList: @unchecked Sendable {
    public enum Kind: String, Sendable, CaseIterable, Codable { case clientid, username, peerhost }

    public struct Entry: Sendable, Codable, Equatable {
        public var kind: Kind
        public var who: String
        public var reason: String
        public var at: Double
        /// Seconds since 1970 after which the entry no longer applies; nil: forever.
        public var until: Double?

        public var json: [String: Any] {
            ["as": kind.rawValue, "who": who, "reason": reason,
             "at": ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: at)),
             "until": until.map { ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: $0)) as Any } ?? NSNull()]
        }
    }

    /// `who` by its bytes, as the broker names clients (`UTF8Key`).
    private struct Key: Hashable {
        var kind: Kind
        var who: UTF8Key
        init(kind: Kind, who: String) { self.kind = kind; self.who = UTF8Key(who) }
    }

    private let lock = NIOLock()
    private var entries: [Key: Entry] = [:]
    private let count = ManagedAtomic<Int>(0)
    let path: String?

    init(path: String?) {
        self.path = path
        guard let path, let data = FileManager.default.contents(atPath: path),
              let list = try? JSONDecoder().decode([Entry].self, from: data) else { return }
        for e in list { entries[Key(kind: e.kind, who: e.who)] = e }
        count.store(entries.count, ordering: .relaxed)
    }

    /// The entry that bans this client now, if any.
    func match(clientId: String, username: String?, host: String, now: Double = Date().timeIntervalSince1970) -> Entry? {
        guard count.load(ordering: .relaxed) > 0 else { return nil }
        return lock.withLock {
            for key in [Key(kind: .clientid, who: clientId), Key(kind: .peerhost, who: host)]
                + (username.map { [Key(kind: .username, who: $0)] } ?? []) {
                if let e = entries[key], e.until.map({ $0 > now }) ?? true { return e }
            }
            return nil
        }
    }

    public func list(now: Double = Date().timeIntervalSince1970) -> [Entry] {
        lock.withLock { entries.values.filter { $0.until.map { $0 > now } ?? true } }
            .sorted { ($0.kind.rawValue, $0.who) < ($1.kind.rawValue, $1.who) }
    }

    /// Adds or replaces an entry; false when the file could not be written (nothing changed).
    func add(_ e: Entry) throws {
        try change { $0[Key(kind: e.kind, who: e.who)] = e }
    }

    /// Removes an entry; false when there was none.
    func remove(_ kind: Kind, _ who: String) throws -> Bool {
        var removed = false
        try change { removed = $0.removeValue(forKey: Key(kind: kind, who: who)) != nil }
        return removed
    }

    private func change(_ body: (inout [Key: Entry]) -> Void) throws {
        try lock.withLock {
            var next = entries
            body(&next)
            let now = Date().timeIntervalSince1970
            next = next.filter { $0.value.until.map { $0 > now } ?? true }
            if let path {
                let data = try JSONEncoder().encode(next.values.sorted { ($0.kind.rawValue, $0.who) < ($1.kind.rawValue, $1.who) })
                let dir = (path as NSString).deletingLastPathComponent
                if !dir.isEmpty { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
                try data.write(to: URL(fileURLWithPath: path), options: .atomic)
            }
            entries = next
            count.store(next.count, ordering: .relaxed)
        }
    }
}
