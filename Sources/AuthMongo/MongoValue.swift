/// The part of BSON the plugin reads and writes: what a selector holds and what a stored user
/// or ACL document may hold. Every other BSON type is kept as `.other(typeName)`, so that a
/// document with a date, an ObjectId or binary data in a field the plugin reads is an error
/// naming that type, not a crash.
public indirect enum MongoValue: Sendable, Equatable {
    case string(String)
    case int32(Int32)
    case int64(Int64)
    case double(Double)
    case bool(Bool)
    case null
    case array([MongoValue])
    case document(MongoDocument)
    /// Any other BSON type, by its name (`objectId`, `date`, `binData`, `decimal`...).
    case other(String)

    /// The BSON type's name as MongoDB's `$type` spells it, for error messages.
    public var typeName: String {
        switch self {
        case .string: return "string"
        case .int32: return "int"
        case .int64: return "long"
        case .double: return "double"
        case .bool: return "bool"
        case .null: return "null"
        case .array: return "array"
        case .document: return "object"
        case .other(let name): return name
        }
    }
}

/// One BSON document, fields in stored order (a selector is sent in the order written).
public struct MongoDocument: Sendable, Equatable, ExpressibleByDictionaryLiteral {
    public struct Field: Sendable, Equatable {
        public var name: String
        public var value: MongoValue
        public init(_ name: String, _ value: MongoValue) {
            self.name = name
            self.value = value
        }
    }

    public var fields: [Field]

    public init(_ fields: [Field] = []) { self.fields = fields }

    public init(dictionaryLiteral elements: (String, MongoValue)...) {
        fields = elements.map { Field($0.0, $0.1) }
    }

    /// The first field named `name` (a stored document has each name once).
    public subscript(_ name: String) -> MongoValue? {
        fields.first { $0.name == name }?.value
    }
}

extension MongoDocument {
    /// Why the document is over the plugin's bounds (`max_rows` elements in one array,
    /// `max_field_bytes` bytes in one string), with the field's dotted path; nil when within.
    /// Nothing is decided on part of a document.
    public func overLimit(maxElements: Int, maxStringBytes: Int) -> String? {
        func check(_ v: MongoValue, _ path: String) -> String? {
            switch v {
            case .string(let s) where s.utf8.count > maxStringBytes:
                return "\(path) holds \(s.utf8.count) bytes, over max_field_bytes (\(maxStringBytes))"
            case .array(let a):
                if a.count > maxElements { return "\(path) holds \(a.count) elements, over max_rows (\(maxElements))" }
                for (i, e) in a.enumerated() { if let why = check(e, "\(path).\(i)") { return why } }
                return nil
            case .document(let d):
                for f in d.fields { if let why = check(f.value, "\(path).\(f.name)") { return why } }
                return nil
            default:
                return nil
            }
        }
        for f in fields { if let why = check(f.value, f.name) { return why } }
        return nil
    }
}
