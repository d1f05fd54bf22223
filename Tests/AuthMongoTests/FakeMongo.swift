import AuthBackends
import AuthMongo
import Foundation
import SwiftletIPC

/// A MongoDB in memory: collections of documents, a find matching every filter field by
/// equality (what the plugin's selectors ask), the finds it was sent, and an error to throw.
final class FakeMongo: MongoDatabase, @unchecked Sendable {
    private let lock = NSLock()
    private var collections: [String: [MongoDocument]] = [:]
    private var sent: [MongoFind] = []
    var failure: BackendError?

    init(_ collections: [String: [MongoDocument]] = [:]) { self.collections = collections }

    func insert(_ collection: String, _ doc: MongoDocument) {
        lock.withLock { collections[collection, default: []].append(doc) }
    }

    var finds: [MongoFind] { lock.withLock { sent } }

    func find(_ f: MongoFind) async throws -> [MongoDocument] {
        try lock.withLock {
            sent.append(f)
            if let failure { throw failure }
            let matching = (collections[f.collection] ?? []).filter { doc in
                f.filter.fields.allSatisfy { doc[$0.name] == $0.value }
            }
            return Array(matching.prefix(f.limit)).map { doc in
                guard !f.projection.isEmpty else { return doc }
                return MongoDocument(doc.fields.filter { f.projection.contains($0.name) })
            }
        }
    }
}

func client(_ user: String? = "alice", id: String = "c1", ip: String = "10.0.0.1") -> IPCClient {
    IPCClient(clientId: id, username: user, peerAddress: ip, peerPort: 1, protocolLevel: 4, listener: "tcp")
}

func sha256Hex(_ s: String) -> String {
    PasswordCheck(.digest(.sha256, salt: .none)).make(Array(s.utf8), salt: nil)!
}
