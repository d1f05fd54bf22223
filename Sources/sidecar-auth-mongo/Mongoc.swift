import AuthBackends
import AuthMongo
import CMongoc
import Glibc
import Logging
import NIOConcurrencyHelpers

/// Why the client pool could not be made, or a client could not be opened, in libmongoc's own
/// words (the connection pool logs it once when MongoDB becomes unreachable, and answers
/// requests `error` with it meanwhile).
struct MongoSetupError: Error, CustomStringConvertible {
    let description: String
}

/// libmongoc's `mongoc_client_pool_t` for the plugin's `mongo_pool`. This file is the only one
/// that touches libmongoc and libbson: it owns the URI, the pool, every client, cursor and
/// `bson_t`, copies documents into `MongoDocument`s, and turns `bson_error_t`s into
/// `BackendError`s. The pool is thread-safe; each popped client is used by one thread at a
/// time (AuthBackends' ConnectionPool), hence `@unchecked Sendable`.
final class MongoClientPool: @unchecked Sendable {
    private let pool: OpaquePointer
    let database: String
    let target: String
    /// The query's `maxTimeMS` and the `socketTimeoutMS` a stream error is compared with.
    let queryTimeoutMs: Int64

    init(_ settings: AuthMongoSettings, logger: Logger) throws {
        Self.initialize(logger)
        let p = settings.pool
        database = p.database
        target = p.described
        queryTimeoutMs = Int64(settings.queryTimeout * 1000)
        var error = bson_error_t()
        guard let uri = mongoc_uri_new_with_error(p.connectionString, &error) else {
            throw MongoSetupError(description: "mongo_pool: \(Self.message(error))")
        }
        defer { mongoc_uri_destroy(uri) }
        if let login = p.login {
            // Set through the API: no character of the user name or password needs escaping.
            guard mongoc_uri_set_username(uri, login), mongoc_uri_set_password(uri, p.password ?? ""),
                  mongoc_uri_set_auth_source(uri, p.authSource ?? p.database) else {
                throw MongoSetupError(description: "mongo_pool: login, password or auth_source is not valid UTF-8")
            }
        }
        if p.tls {
            _ = mongoc_uri_set_option_as_bool(uri, MONGOC_URI_TLS, true)
            if let f = p.tlsCAFile { _ = mongoc_uri_set_option_as_utf8(uri, MONGOC_URI_TLSCAFILE, f) }
            if let f = p.tlsCertificateKeyFile { _ = mongoc_uri_set_option_as_utf8(uri, MONGOC_URI_TLSCERTIFICATEKEYFILE, f) }
            if p.tlsAllowInvalidHostnames { _ = mongoc_uri_set_option_as_bool(uri, MONGOC_URI_TLSALLOWINVALIDHOSTNAMES, true) }
        }
        for (name, value) in settings.uriOptions {
            guard mongoc_uri_set_option_as_int32(uri, name, value) else {
                throw MongoSetupError(description: "mongo_pool: libmongoc refused \(name)=\(value)")
            }
        }
        _ = mongoc_uri_set_appname(uri, "swiftlet-auth-mongo")
        guard let pool = mongoc_client_pool_new_with_error(uri, &error) else {
            throw MongoSetupError(description: "mongo_pool: \(Self.message(error))")
        }
        self.pool = pool
        _ = mongoc_client_pool_set_error_api(pool, Int32(MONGOC_ERROR_API_VERSION_2))
        mongoc_client_pool_max_size(pool, UInt32(p.size))
        Self.configured()
    }

    /// A client of the pool, checked with a `ping` (which opens and authenticates its
    /// connection): an unreachable server or refused credentials are reported here, once,
    /// instead of as an error on every request. Never waits for a free client: the
    /// ConnectionPool holds at most `pool_size`.
    func open() throws -> MongoConnection {
        guard let client = mongoc_client_pool_try_pop(pool) else {
            throw MongoSetupError(description: "MongoDB \(target): no free client in the pool")
        }
        let c = MongoConnection(client, self)
        do {
            try c.ping()
        } catch {
            close(c)
            throw MongoSetupError(description: "MongoDB \(target): \(Self.reason(error))")
        }
        return c
    }

    func close(_ c: MongoConnection) { mongoc_client_pool_push(pool, c.client) }

    // MARK: library-wide set-up

    /// The text of a BackendError without its kind (the pool adds its own words).
    private static func reason(_ e: any Error) -> String {
        switch e as? BackendError {
        case .unavailable(let s)?, .overloaded(let s)?, .connectionLost(let s)?, .query(let s)?,
             .resultTooLarge(let s)?:
            return s
        case .timeout(let s)?:
            return "timed out: \(s)"
        case nil:
            return "\(e)"
        }
    }

    private final class LogTarget: Sendable {
        let logger: Logger
        /// Until the pool is made, libmongoc's warnings are about the configuration (an
        /// unknown URI option...): logged as warnings. After, they repeat what the pool's
        /// one-line transitions already say on every reconnect attempt: logged at debug.
        let configuring = NIOLockedValueBox(true)
        init(_ logger: Logger) { self.logger = logger }
    }

    private static let initOnce: Void = { mongoc_init() }()
    private static let logTarget = NIOLockedValueBox<LogTarget?>(nil)

    /// `mongoc_init` once, and libmongoc's own log lines into the sidecar's logger instead of
    /// stderr.
    private static func initialize(_ logger: Logger) {
        _ = initOnce
        let target = LogTarget(logger)
        logTarget.withLockedValue { $0 = target }
        mongoc_log_set_handler({ level, domain, message, user in
            guard let user, let message else { return }
            let target = Unmanaged<LogTarget>.fromOpaque(user).takeUnretainedValue()
            let text = "libmongoc \(domain.map { String(cString: $0) } ?? ""): \(String(cString: message))"
            switch level {
            case MONGOC_LOG_LEVEL_ERROR, MONGOC_LOG_LEVEL_CRITICAL: target.logger.error("\(text)")
            case MONGOC_LOG_LEVEL_WARNING:
                if target.configuring.withLockedValue({ $0 }) {
                    target.logger.warning("\(text)")
                } else {
                    target.logger.debug("\(text)")
                }
            default: target.logger.trace("\(text)")
            }
        }, Unmanaged.passUnretained(target).toOpaque())
    }

    private static func configured() {
        logTarget.withLockedValue { $0?.configuring.withLockedValue { $0 = false } }
    }

    static func message(_ e: bson_error_t) -> String {
        withUnsafeBytes(of: e.message) { raw in
            let text = raw.prefix { $0 != 0 }
            return text.isEmpty ? "error \(e.domain).\(e.code)" : String(decoding: text, as: UTF8.self)
        }
    }
}

/// One client popped from the pool.
final class MongoConnection: @unchecked Sendable {
    fileprivate let client: OpaquePointer
    private unowned let pool: MongoClientPool
    /// Set when the last call left the client unusable (server selection failed, a read timed
    /// out): the ConnectionPool gives it back and opens another.
    private(set) var broken = false

    fileprivate init(_ client: OpaquePointer, _ pool: MongoClientPool) {
        self.client = client
        self.pool = pool
    }

    /// `{ping: 1}` on the plugin's database.
    func ping() throws {
        let command = bson_new()!
        defer { bson_destroy(command) }
        _ = bson_append_int32(command, "ping", -1, 1)
        var error = bson_error_t()
        let started = ContinuousClock.now
        let ok = withAligned { reply in
            defer { bson_destroy(reply) }
            return mongoc_client_command_simple(client, pool.database, command, nil, reply, &error)
        }
        if !ok { throw backendError(error, since: started) }
    }

    /// Runs one find: the filter's strings sent as BSON strings (never parsed), `limit`,
    /// the projection (without `_id`) and `maxTimeMS`; every document returned copied out.
    func find(_ f: MongoFind) throws -> [MongoDocument] {
        guard let collection = mongoc_client_get_collection(client, pool.database, f.collection) else {
            throw BackendError.query("no collection \(f.collection)")
        }
        defer { mongoc_collection_destroy(collection) }
        let filter = bson_new()!
        defer { bson_destroy(filter) }
        for field in f.filter.fields { Self.append(filter, field.name, field.value) }
        let opts = bson_new()!
        defer { bson_destroy(opts) }
        _ = bson_append_int64(opts, "limit", -1, Int64(f.limit))
        _ = bson_append_int64(opts, "maxTimeMS", -1, pool.queryTimeoutMs)
        if !f.projection.isEmpty {
            let projection = bson_new()!
            defer { bson_destroy(projection) }
            _ = bson_append_int32(projection, "_id", -1, 0)
            for name in f.projection { _ = bson_append_int32(projection, name, -1, 1) }
            _ = bson_append_document(opts, "projection", -1, projection)
        }
        let started = ContinuousClock.now
        guard let cursor = mongoc_collection_find_with_opts(collection, filter, opts, nil) else {
            throw BackendError.query("find on \(f.collection): no cursor")
        }
        defer { mongoc_cursor_destroy(cursor) }
        var out: [MongoDocument] = []
        var doc: OpaquePointer?
        while mongoc_cursor_next(cursor, &doc) {
            guard let doc else { break }
            out.append(Self.copy(doc))
        }
        var error = bson_error_t()
        if mongoc_cursor_error(cursor, &error) { throw backendError(error, since: started) }
        return out
    }

    /// libmongoc's error as the pool understands it:
    /// - no server selectable (down, refusing the credentials): `unavailable`, the client given
    ///   back (the pool reopens it with backoff; while none is open requests fail at once);
    /// - a network error: `connectionLost` (the pool retries once on another client), or
    ///   `timeout` when it came after `socketTimeoutMS` (a slow server: not retried);
    /// - the server's own refusal: `query`, or `timeout` for MaxTimeMSExpired (50).
    private func backendError(_ e: bson_error_t, since started: ContinuousClock.Instant) -> BackendError {
        let text = MongoClientPool.message(e)
        switch e.domain {
        case UInt32(MONGOC_ERROR_SERVER_SELECTION.rawValue):
            broken = true
            return .unavailable(text)
        case UInt32(MONGOC_ERROR_CLIENT.rawValue) where e.code == UInt32(MONGOC_ERROR_CLIENT_AUTHENTICATE.rawValue),
             UInt32(MONGOC_ERROR_SASL.rawValue), UInt32(MONGOC_ERROR_SCRAM.rawValue):
            broken = true
            return .unavailable(text)
        case UInt32(MONGOC_ERROR_STREAM.rawValue), UInt32(MONGOC_ERROR_PROTOCOL.rawValue):
            broken = true
            // libmongoc says "socket error or timeout" for both: the time taken tells them apart.
            let elapsed = ContinuousClock.now - started
            if elapsed >= .milliseconds(pool.queryTimeoutMs * 9 / 10) {
                return .timeout("no answer within \(pool.queryTimeoutMs) ms (\(text))")
            }
            return .connectionLost(text)
        case UInt32(MONGOC_ERROR_SERVER.rawValue) where e.code == 50:
            return .timeout(text)
        default:
            return .query(text)
        }
    }

    // MARK: BSON in and out

    private static func append(_ b: OpaquePointer, _ key: String, _ v: MongoValue) {
        switch v {
        case .string(let s):
            var s = s
            s.withUTF8 { bytes in
                bytes.withMemoryRebound(to: CChar.self) { chars in
                    if let base = chars.baseAddress {
                        _ = bson_append_utf8(b, key, -1, base, Int32(chars.count))
                    } else {
                        _ = bson_append_utf8(b, key, -1, "", 0)
                    }
                }
            }
        case .int32(let i): _ = bson_append_int32(b, key, -1, i)
        case .int64(let i): _ = bson_append_int64(b, key, -1, i)
        case .double(let d): _ = bson_append_double(b, key, -1, d)
        case .bool(let x): _ = bson_append_bool(b, key, -1, x)
        case .null, .other: _ = bson_append_null(b, key, -1)
        case .array(let a):
            let child = bson_new()!
            defer { bson_destroy(child) }
            for (i, e) in a.enumerated() { append(child, String(i), e) }
            _ = bson_append_array(b, key, -1, child)
        case .document(let d):
            let child = bson_new()!
            defer { bson_destroy(child) }
            for f in d.fields { append(child, f.name, f.value) }
            _ = bson_append_document(b, key, -1, child)
        }
    }

    /// Nesting kept when copying; deeper documents are `.other("object")` (the plugin reads
    /// top-level fields and arrays of strings).
    private static let maxDepth = 8

    static func copy(_ doc: OpaquePointer) -> MongoDocument {
        withAligned { it in
            guard bson_iter_init(it, doc) else { return MongoDocument() }
            return MongoDocument(fields(it, depth: 0))
        }
    }

    private static func fields(_ it: OpaquePointer, depth: Int) -> [MongoDocument.Field] {
        var out: [MongoDocument.Field] = []
        while bson_iter_next(it) {
            out.append(.init(String(cString: bson_iter_key(it)), value(it, depth: depth)))
        }
        return out
    }

    private static func value(_ it: OpaquePointer, depth: Int) -> MongoValue {
        switch bson_iter_type(it) {
        case BSON_TYPE_UTF8:
            var length: UInt32 = 0
            guard let p = bson_iter_utf8(it, &length) else { return .string("") }
            return .string(String(decoding: UnsafeRawBufferPointer(start: p, count: Int(length)), as: UTF8.self))
        case BSON_TYPE_INT32: return .int32(bson_iter_int32(it))
        case BSON_TYPE_INT64: return .int64(bson_iter_int64(it))
        case BSON_TYPE_DOUBLE: return .double(bson_iter_double(it))
        case BSON_TYPE_BOOL: return .bool(bson_iter_bool(it))
        case BSON_TYPE_NULL: return .null
        case BSON_TYPE_ARRAY, BSON_TYPE_DOCUMENT:
            let isArray = bson_iter_type(it) == BSON_TYPE_ARRAY
            return withAligned { child in
                guard depth < maxDepth, bson_iter_recurse(it, child) else { return .other(isArray ? "array" : "object") }
                let inner = fields(child, depth: depth + 1)
                return isArray ? .array(inner.map(\.value)) : .document(MongoDocument(inner))
            }
        case BSON_TYPE_OID: return .other("objectId")
        case BSON_TYPE_DATE_TIME: return .other("date")
        case BSON_TYPE_BINARY: return .other("binData")
        case BSON_TYPE_DECIMAL128: return .other("decimal")
        case BSON_TYPE_REGEX: return .other("regex")
        case BSON_TYPE_TIMESTAMP: return .other("timestamp")
        case BSON_TYPE_UNDEFINED: return .other("undefined")
        default: return .other("type \(bson_iter_type(it).rawValue)")
        }
    }
}

/// Zeroed storage for one libbson struct that libbson declares 128-byte aligned (`bson_t`,
/// `bson_iter_t`: Swift sees them only as `OpaquePointer`), valid during `body`.
private func withAligned<T>(_ body: (OpaquePointer) throws -> T) rethrows -> T {
    let raw = UnsafeMutableRawPointer.allocate(byteCount: 128, alignment: 128)
    defer { raw.deallocate() }
    raw.initializeMemory(as: UInt8.self, repeating: 0, count: 128)
    return try body(OpaquePointer(raw))
}
