import AuthBackends
import AuthRedis
import CHiredis
import Glibc

/// Why a connection could not be opened, in Redis's own words (the pool logs it once when
/// Redis becomes unreachable, and answers requests `error` with it meanwhile).
struct RedisConnectError: Error, CustomStringConvertible {
    let description: String
}

/// One hiredis connection (the synchronous API). This file is the only one that touches
/// hiredis: it owns the `redisContext` and every reply pointer, copies replies into
/// `RedisValue` and frees them at once, and turns hiredis failures into `BackendError`s
/// (`connectionLost`: the pool closes the connection and reconnects it). A connection is
/// used by one pool thread at a time (ConnectionPool), hence `@unchecked Sendable`.
final class RedisConnection: @unchecked Sendable {
    private let context: UnsafeMutablePointer<redisContext>
    private let target: String

    /// Connects, authenticates (`AUTH password`) and selects the database, then checks the
    /// connection with PING so that a missing or wrong password is reported here, once,
    /// with Redis's own words, instead of as an error on every request.
    init(_ endpoint: RedisEndpoint) throws {
        let connectTimeout = Self.timeval(endpoint.connectTimeout)
        let c: UnsafeMutablePointer<redisContext>?
        switch endpoint.address {
        case .tcp(let host, let port):
            target = "\(host):\(port)"
            c = redisConnectWithTimeout(host, Int32(port), connectTimeout)
        case .unix(let path):
            target = path
            c = redisConnectUnixWithTimeout(path, connectTimeout)
        }
        guard let c else { throw RedisConnectError(description: "Redis at \(target): out of memory") }
        if c.pointee.err != 0 {
            let why = Self.errorText(c)
            redisFree(c)
            throw RedisConnectError(description: "Redis at \(target): \(why)")
        }
        context = c
        if redisSetTimeout(c, Self.timeval(endpoint.commandTimeout)) != REDIS_OK {
            let why = Self.errorText(c)
            redisFree(c)
            throw RedisConnectError(description: "Redis at \(target): setting the timeout failed: \(why)")
        }
        do {
            if let password = endpoint.password, !password.isEmpty {
                if case .error(let e) = try command([Array("AUTH".utf8), Array(password.utf8)]) {
                    throw RedisConnectError(description: "Redis at \(target) refused AUTH: \(e)")
                }
            }
            if endpoint.database != 0 {
                if case .error(let e) = try command([Array("SELECT".utf8), Array(String(endpoint.database).utf8)]) {
                    throw RedisConnectError(description: "Redis at \(target) refused SELECT \(endpoint.database): \(e)")
                }
            }
            let pong = try command([Array("PING".utf8)])
            if case .error(let e) = pong {
                throw RedisConnectError(description: "Redis at \(target) answered PING with: \(e)"
                                            + (endpoint.password == nil ? " (set password in [auth_redis.redis_pool])" : ""))
            }
        } catch {
            redisFree(c)
            throw error
        }
    }

    func close() { redisFree(context) }

    /// PING; throws when Redis does not answer PONG (NOAUTH: no or wrong password).
    func ping() throws {
        let reply = try command([Array("PING".utf8)])
        guard case .status("PONG") = reply else {
            if case .error(let e) = reply { throw BackendError.connectionLost("Redis at \(target) answered PING with: \(e)") }
            throw BackendError.connectionLost("Redis at \(target) answered PING with \(reply)")
        }
    }

    /// One command, every argument sent as it is (redisCommandArgv: binary safe, never
    /// parsed). An error reply is returned as `.error`; a broken connection (closed, timed
    /// out, protocol error) throws `connectionLost`.
    func command(_ args: [[UInt8]]) throws -> RedisValue {
        try pipeline([args])[0]
    }

    /// Several commands in one round trip (redisAppendCommandArgv for each, then one reply
    /// each, in order), every argument binary safe as in `command`.
    func pipeline(_ commands: [[[UInt8]]]) throws -> [RedisValue] {
        for args in commands {
            let ok = Self.withArgv(args) { argc, argv, lengths in
                redisAppendCommandArgv(context, argc, argv, lengths) == REDIS_OK
            }
            guard ok else { throw BackendError.connectionLost("Redis at \(target): \(Self.errorText(context))") }
        }
        var replies: [RedisValue] = []
        replies.reserveCapacity(commands.count)
        for _ in commands {
            var raw: UnsafeMutableRawPointer?
            guard redisGetReply(context, &raw) == REDIS_OK, let raw else {
                throw BackendError.connectionLost("Redis at \(target): \(Self.errorText(context))")
            }
            replies.append(Self.copy(raw.assumingMemoryBound(to: redisReply.self)))
            freeReplyObject(raw)
        }
        return replies
    }

    /// The C view of one command's arguments: argc, argv (NUL-terminated copies, though the
    /// lengths are what count) and the lengths, valid during `body`.
    private static func withArgv<T>(_ args: [[UInt8]],
                                    _ body: (Int32, UnsafeMutablePointer<UnsafePointer<CChar>?>?, UnsafePointer<Int>?) -> T) -> T {
        let lengths = args.map { $0.count }
        var flat: [CChar] = []
        flat.reserveCapacity(lengths.reduce(0, +) + args.count)
        var offsets: [Int] = []
        for a in args {
            offsets.append(flat.count)
            for b in a { flat.append(CChar(bitPattern: b)) }
            flat.append(0)
        }
        return flat.withUnsafeBufferPointer { base in
            var argv: [UnsafePointer<CChar>?] = offsets.map { base.baseAddress! + $0 }
            return argv.withUnsafeMutableBufferPointer { argvp in
                lengths.withUnsafeBufferPointer { lens in body(Int32(args.count), argvp.baseAddress, lens.baseAddress) }
            }
        }
    }

    private static func copy(_ r: UnsafeMutablePointer<redisReply>) -> RedisValue {
        let reply = r.pointee
        func bytes() -> [UInt8] {
            guard let s = reply.str else { return [] }
            return Array(UnsafeRawBufferPointer(start: s, count: Int(reply.len)))
        }
        switch reply.type {
        case REDIS_REPLY_STRING: return .string(bytes())
        case REDIS_REPLY_STATUS: return .status(String(decoding: bytes(), as: UTF8.self))
        case REDIS_REPLY_ERROR: return .error(String(decoding: bytes(), as: UTF8.self))
        case REDIS_REPLY_INTEGER: return .integer(Int64(reply.integer))
        case REDIS_REPLY_ARRAY:
            var out: [RedisValue] = []
            out.reserveCapacity(Int(reply.elements))
            for i in 0..<Int(reply.elements) {
                guard let e = reply.element[i] else { out.append(.null); continue }
                out.append(copy(e))
            }
            return .array(out)
        default: return .null
        }
    }

    private static func errorText(_ c: UnsafeMutablePointer<redisContext>) -> String {
        withUnsafeBytes(of: c.pointee.errstr) { raw in
            let text = raw.prefix { $0 != 0 }
            return text.isEmpty ? "error \(c.pointee.err)" : String(decoding: text, as: UTF8.self)
        }
    }

    private static func timeval(_ seconds: Double) -> Glibc.timeval {
        let s = max(seconds, 0.001)
        return Glibc.timeval(tv_sec: Int(s), tv_usec: Int((s - Double(Int(s))) * 1_000_000))
    }
}
