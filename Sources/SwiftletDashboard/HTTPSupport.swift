import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// The request context: who is calling (set by `AuthMiddleware`) and from where.
struct DashboardContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let remoteAddress: String
    var admin: String?
    /// The caller came with the session cookie (not a Bearer token or API key).
    var viaCookie = false

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress?.ipAddress ?? "unknown"
    }

    var maxUploadSize: Int { APIError.maxBody }
}

/// An error as the API answers it: `{"code": ..., "message": ...}` with a status.
struct APIError: Error, HTTPResponseError, CustomStringConvertible {
    static let maxBody = 64 * 1024

    var status: HTTPResponse.Status
    var code: String
    var message: String
    var headers: HTTPFields = [:]

    init(_ status: HTTPResponse.Status, _ code: String, _ message: String) {
        self.status = status
        self.code = code
        self.message = message
    }

    var description: String { "\(code): \(message)" }

    static func badRequest(_ m: String) -> APIError { APIError(.badRequest, "BAD_REQUEST", m) }
    static func notFound(_ m: String, code: String = "NOT_FOUND") -> APIError { APIError(.notFound, code, m) }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        var h = headers
        h[.contentType] = "application/json"
        SecurityHeaders.apply(&h, api: true)
        return Response(status: status, headers: h, body: .init(byteBuffer: JSON.buffer(["code": code, "message": message])))
    }
}

enum JSON {
    static func buffer(_ value: Any) -> ByteBuffer {
        let data = (try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .fragmentsAllowed])) ?? Data("null".utf8)
        return ByteBuffer(bytes: data)
    }

    static func response(_ value: Any, status: HTTPResponse.Status = .ok) -> Response {
        var h: HTTPFields = [.contentType: "application/json"]
        SecurityHeaders.apply(&h, api: true)
        return Response(status: status, headers: h, body: .init(byteBuffer: buffer(value)))
    }

    static func noContent() -> Response {
        var h: HTTPFields = [:]
        SecurityHeaders.apply(&h, api: true)
        return Response(status: .noContent, headers: h)
    }

    /// Parses a JSON ctl reply (an object or an array).
    static func parse(_ text: String) -> Any? {
        guard !text.isEmpty else { return nil }
        return try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])
    }
}

/// A JSON value that keeps booleans and numbers apart (JSONSerialization does not on Linux).
enum JSONValue: Decodable {
    case null, bool(Bool), number(Double), string(String), array([JSONValue]), object([String: JSONValue])

    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let d = try? c.decode(Double.self) { self = .number(d) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
        else { self = .object(try c.decode([String: JSONValue].self)) }
    }
}

/// A request body as a JSON object whose keys are checked: over 64 KiB, not JSON, not an
/// object, an unknown key, a missing one or a wrong type is 400 with the reason.
struct Body {
    let object: [String: JSONValue]

    static func read(_ request: Request, allowed: Set<String>, required: Set<String> = []) async throws -> Body {
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: APIError.maxBody)
        } catch {
            throw APIError.badRequest("the body is over \(APIError.maxBody) bytes")
        }
        guard buffer.readableBytes > 0 else {
            if required.isEmpty { return Body(object: [:]) }
            throw APIError.badRequest("a JSON object is required")
        }
        guard let value = try? JSONDecoder().decode(JSONValue.self, from: Data(buffer.readableBytesView)) else {
            throw APIError.badRequest("the body is not valid JSON")
        }
        guard case .object(let o) = value else { throw APIError.badRequest("the body must be a JSON object") }
        if let bad = o.keys.sorted().first(where: { !allowed.contains($0) }) {
            throw APIError.badRequest("unknown field \"\(bad)\" (allowed: \(allowed.sorted().joined(separator: ", ")))")
        }
        if let missing = required.sorted().first(where: { o[$0] == nil }) {
            throw APIError.badRequest("missing field \"\(missing)\"")
        }
        return Body(object: o)
    }

    func string(_ k: String) throws -> String? {
        switch object[k] {
        case nil, .null?: return nil
        case .string(let s)?: return s
        default: throw APIError.badRequest("\"\(k)\" must be a string")
        }
    }

    func bool(_ k: String) throws -> Bool? {
        switch object[k] {
        case nil, .null?: return nil
        case .bool(let b)?: return b
        default: throw APIError.badRequest("\"\(k)\" must be true or false")
        }
    }

    func int(_ k: String, _ range: ClosedRange<Int>) throws -> Int? {
        switch object[k] {
        case nil, .null?: return nil
        case .number(let d)? where Int(exactly: d).map(range.contains) == true: return Int(d)
        default: throw APIError.badRequest("\"\(k)\" must be an integer from \(range.lowerBound) to \(range.upperBound)")
        }
    }

    /// A string or an array of strings (EMQX's `topic` and our `topics`).
    func strings(_ k: String) throws -> [String]? {
        switch object[k] {
        case nil, .null?: return nil
        case .string(let s)?: return [s]
        case .array(let a)?:
            return try a.map {
                guard case .string(let s) = $0 else { throw APIError.badRequest("\"\(k)\" must be a string or an array of strings") }
                return s
            }
        default: throw APIError.badRequest("\"\(k)\" must be a string or an array of strings")
        }
    }

    func required(_ k: String) throws -> String {
        guard let s = try string(k), !s.isEmpty else { throw APIError.badRequest("\"\(k)\" must be a non-empty string") }
        return s
    }
}

/// Page and limit from the query; bounded.
struct Paging {
    var page: Int
    var limit: Int

    init(_ request: Request) throws {
        let q = request.uri.queryParameters
        page = 1
        limit = 100
        if let p = q["page"] {
            guard let v = Int(String(p)), v >= 1, v <= 1_000_000 else { throw APIError.badRequest("page must be an integer from 1") }
            page = v
        }
        if let l = q["limit"] {
            guard let v = Int(String(l)), (1...1000).contains(v) else { throw APIError.badRequest("limit must be an integer from 1 to 1000") }
            limit = v
        }
    }

    func apply(_ all: [[String: Any]]) -> [String: Any] {
        let start = min(all.count, (page - 1) * limit)
        let end = min(all.count, start + limit)
        return ["data": Array(all[start..<end]),
                "meta": ["page": page, "limit": limit, "count": all.count, "hasnext": end < all.count] as [String: Any]]
    }
}

enum SecurityHeaders {
    static func apply(_ h: inout HTTPFields, api: Bool) {
        h[.init("X-Content-Type-Options")!] = "nosniff"
        h[.init("X-Frame-Options")!] = "DENY"
        h[.init("Referrer-Policy")!] = "no-referrer"
        h[.init("Content-Security-Policy")!] = api
            ? "default-src 'none'; frame-ancestors 'none'"
            : "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
        h[.init("Cross-Origin-Opener-Policy")!] = "same-origin"
        if api { h[.cacheControl] = "no-store" }
    }
}
