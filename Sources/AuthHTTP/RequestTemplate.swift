/// One HTTP request, ready for the transport (Curl.swift in the sidecar).
public struct HTTPRequest: Sendable, Equatable {
    public var method: HTTPMethod
    public var url: String
    public var headers: [String]          // "Name: value" lines
    public var body: [UInt8]?
    /// Whole-request timeout (connect, send, answer), seconds.
    public var timeout: Double
    public var tls: TLSOptions

    public init(method: HTTPMethod, url: String, headers: [String] = [], body: [UInt8]? = nil,
                timeout: Double = 5, tls: TLSOptions = TLSOptions()) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.timeout = timeout
        self.tls = tls
    }

    /// The URL without its query string: what logs show (a GET query carries the password).
    public var redactedURL: String {
        url.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? url
    }
}

public enum HTTPMethod: String, Sendable, Equatable {
    case get = "GET", post = "POST"
}

/// How POST sends its params.
public enum BodyEncoding: String, Sendable, Equatable {
    case form, json

    var contentType: String {
        switch self {
        case .form: return "application/x-www-form-urlencoded"
        case .json: return "application/json"
        }
    }
}

/// TLS for https URLs (libcurl's CAINFO, SSLCERT, SSLKEY, SSL_VERIFYPEER/VERIFYHOST).
public struct TLSOptions: Sendable, Equatable {
    public var caFile: String?
    public var certFile: String?
    public var keyFile: String?
    public var verify: Bool

    public init(caFile: String? = nil, certFile: String? = nil, keyFile: String? = nil, verify: Bool = true) {
        self.caFile = caFile
        self.certFile = certFile
        self.keyFile = keyFile
        self.verify = verify
    }
}

/// One of super_req, auth_req, acl_req: where and how to ask, with placeholders in the
/// param values (and, percent-encoded, in the URL).
public struct RequestTemplate: Sendable, Equatable {
    public struct Param: Sendable, Equatable {
        public var key: String
        public var value: String
        public init(_ key: String, _ value: String) {
            self.key = key
            self.value = value
        }
    }

    public var method: HTTPMethod
    public var url: String
    public var params: [Param]
    public var headers: [Param]
    public var timeout: Double
    public var encoding: BodyEncoding
    public var tls: TLSOptions

    public init(method: HTTPMethod = .post, url: String, params: [Param] = [], headers: [Param] = [],
                timeout: Double = 5, encoding: BodyEncoding = .form, tls: TLSOptions = TLSOptions()) {
        self.method = method
        self.url = url
        self.params = params
        self.headers = headers
        self.timeout = timeout
        self.encoding = encoding
        self.tls = tls
    }

    /// The request for these values. GET: params in the query string (appended with `&`
    /// when the URL already has one). POST: params as a form or JSON body. Every value is
    /// percent-encoded (or JSON-escaped); placeholders in the URL are percent-encoded too.
    public func render(_ values: PlaceholderValues) -> HTTPRequest {
        let pairs = params.map { (key: $0.key, value: Placeholders.expand($0.value, values)) }
        var url = String(decoding: Placeholders.expand(self.url, values, escape: Encoding.percentEncode), as: UTF8.self)
        var headerLines = headers.map { "\($0.key): \($0.value)" }
        var body: [UInt8]?
        switch method {
        case .get:
            if !pairs.isEmpty {
                url += (url.contains("?") ? "&" : "?") + String(decoding: Encoding.form(pairs), as: UTF8.self)
            }
        case .post:
            body = encoding == .json ? Encoding.jsonObject(pairs) : Encoding.form(pairs)
            if !headers.contains(where: { $0.key.lowercased() == "content-type" }) {
                headerLines.append("Content-Type: \(encoding.contentType)")
            }
        }
        return HTTPRequest(method: method, url: url, headers: headerLines, body: body, timeout: timeout, tls: tls)
    }

    /// emqttd's `params` written as one string: `"username=%u,password=%P"`. Pairs are
    /// separated by commas, a key from its value by the first `=`; spaces around both are
    /// dropped. An empty string is no params.
    public static func parseParams(_ text: String) throws -> [Param] {
        var out: [Param] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let item = part.trimmingSpaces
            if item.isEmpty {
                if text.trimmingSpaces.isEmpty { continue }
                throw ParamsError("empty item in \"\(text)\"")
            }
            guard let eq = item.firstIndex(of: "=") else { throw ParamsError("\"\(item)\" has no '='") }
            let key = item[..<eq].trimmingSpaces
            guard !key.isEmpty else { throw ParamsError("\"\(item)\" has an empty name") }
            out.append(Param(String(key), String(item[item.index(after: eq)...].trimmingSpaces)))
        }
        return out
    }
}

public struct ParamsError: Error, Equatable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

extension StringProtocol {
    /// Without the spaces and tabs around it.
    var trimmingSpaces: Substring {
        let s = Substring(self)
        guard let first = s.firstIndex(where: { $0 != " " && $0 != "\t" }),
              let last = s.lastIndex(where: { $0 != " " && $0 != "\t" }) else { return s[s.endIndex...] }
        return s[first...last]
    }
}
