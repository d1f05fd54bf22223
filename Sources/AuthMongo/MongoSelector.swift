import AuthBackends

/// A query's `selector`: `{ username = "%u" }`, several fields allowed. Each string value is
/// a text with placeholders (`%u` username, `%c` client id, `%a` IP address, `%C` / `%d` TLS
/// certificate common name / subject) that becomes one BSON **string** with the values put
/// in: a username like `{"$ne": null}` or `$where` is the text of that string, never parsed as
/// a document or an operator. Booleans and integers are constants (`enabled = true`).
public struct MongoSelector: Sendable, Equatable {
    public enum Term: Sendable, Equatable {
        case template(PlaceholderTemplate)
        case constant(MongoValue)
    }

    public struct Field: Sendable, Equatable {
        public var name: String
        public var term: Term
    }

    public var fields: [Field]

    public init(_ fields: [Field]) { self.fields = fields }

    /// `[(name, text)]` with every value a template (tests, defaults).
    public init(templates: [(String, String)]) throws(ConfigProblem) {
        var out: [Field] = []
        for (name, text) in templates {
            try Self.check(name: name)
            try Self.check(template: text)
            out.append(Field(name: name, term: .template(PlaceholderTemplate(text))))
        }
        try self.init(checked: out)
    }

    init(checked fields: [Field]) throws(ConfigProblem) {
        guard !fields.isEmpty else { throw ConfigProblem("needs at least one field, e.g. { username = \"%u\" }") }
        self.fields = fields
    }

    /// The seed's `{username, "%u"}`.
    public static let username = MongoSelector([Field(name: "username", term: .template(PlaceholderTemplate("%u")))])

    /// A field name that MongoDB takes as a field (dotted paths allowed), not as an operator.
    static func check(name: String) throws(ConfigProblem) {
        guard !name.isEmpty else { throw ConfigProblem("a field name must not be empty") }
        guard !name.hasPrefix("$") else {
            throw ConfigProblem("\(name): a field name must not start with $ (operators are not selectors)")
        }
        guard !name.utf8.contains(0) else { throw ConfigProblem("a field name must not hold a NUL byte") }
        guard !name.split(separator: ".", omittingEmptySubsequences: false).contains(where: { $0.isEmpty }) else {
            throw ConfigProblem("\(name): an empty part in a dotted field name")
        }
    }

    /// `%P` would put the password into the database's query log.
    static func check(template text: String) throws(ConfigProblem) {
        if PlaceholderTemplate(text).placeholders.contains(.password) {
            throw ConfigProblem("%P (the password) is not allowed in a selector: it would reach the database's logs")
        }
    }

    /// The filter document for one request: every template rendered into a string. nil when
    /// a placeholder the selector uses has no value (an anonymous client and `%u`): the query
    /// is not run.
    public func render(_ values: PlaceholderValues) -> MongoDocument? {
        var out: [MongoDocument.Field] = []
        out.reserveCapacity(fields.count)
        for f in fields {
            switch f.term {
            case .constant(let v):
                out.append(.init(f.name, v))
            case .template(let t):
                for p in t.placeholders where values[p] == nil { return nil }
                out.append(.init(f.name, .string(String(decoding: t.render(values), as: UTF8.self))))
            }
        }
        return MongoDocument(out)
    }

    /// For logs: `{username: "%u"}`.
    public var described: String {
        let parts = fields.map { f -> String in
            switch f.term {
            case .template(let t):
                let text = t.segments.map { s -> String in
                    switch s {
                    case .text(let x): return x
                    case .placeholder(let p): return "%\(p.rawValue)"
                    }
                }.joined()
                return "\(f.name): \(text.debugDescription)"
            case .constant(.bool(let b)): return "\(f.name): \(b)"
            case .constant(.int64(let i)): return "\(f.name): \(i)"
            case .constant(let v): return "\(f.name): (\(v.typeName))"
            }
        }
        return "{" + parts.joined(separator: ", ") + "}"
    }
}
