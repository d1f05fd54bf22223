import AuthBackends

/// One `find`: a collection of the plugin's database, the filter (a rendered selector), the
/// fields wanted and how many documents at most.
public struct MongoFind: Sendable, Equatable {
    public var collection: String
    public var filter: MongoDocument
    /// Fields returned (`_id` left out); empty: the whole document.
    public var projection: [String]
    public var limit: Int

    public init(collection: String, filter: MongoDocument, projection: [String], limit: Int) {
        self.collection = collection
        self.filter = filter
        self.projection = projection
        self.limit = limit
    }
}

/// A MongoDB database that runs the plugin's finds (libmongoc's client pool in the sidecar, a
/// fake in the tests). Errors are `BackendError`s.
public protocol MongoDatabase: Sendable {
    func find(_ f: MongoFind) async throws -> [MongoDocument]

    /// `first`, then `second` with the same client (one pool round trip) when `next` says so
    /// of the first result. The first find's failure is thrown; the second's is returned.
    func find(_ first: MongoFind, then second: MongoFind,
              when next: @escaping @Sendable ([MongoDocument]) -> Bool) async throws
        -> ([MongoDocument], Result<[MongoDocument], BackendError>?)
}

extension MongoDatabase {
    /// Two separate calls (a database without clients of its own, e.g. a test fake).
    public func find(_ first: MongoFind, then second: MongoFind,
                     when next: @escaping @Sendable ([MongoDocument]) -> Bool) async throws
        -> ([MongoDocument], Result<[MongoDocument], BackendError>?) {
        let r = try await find(first)
        guard next(r) else { return (r, nil) }
        do {
            return (r, .success(try await find(second)))
        } catch {
            return (r, .failure(error as? BackendError ?? .query("\(error)")))
        }
    }
}
