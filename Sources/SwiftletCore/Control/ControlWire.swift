import Foundation

/// The ctl socket's wire format: one JSON object per line each way.
/// Request `{"command": "clients", "args": ["list"]}`;
/// reply `{"status": 0|1|2, "text": "...", "json": <JSON value or null>}`.
public enum ControlWire {
    /// Longest request line accepted (bytes, without the newline).
    public static let maxRequestBytes = 1 << 20

    public struct Request: Sendable, Equatable {
        public var command: String
        public var args: [String]
        public init(command: String, args: [String] = []) {
            self.command = command
            self.args = args
        }
    }

    /// Parses one request line; the error is a message for a usage-error reply.
    public static func parseRequest(_ line: [UInt8]) -> Result<Request, ControlWireError> {
        guard let object = try? JSONSerialization.jsonObject(with: Data(line), options: []) else {
            return .failure(ControlWireError("request is not JSON"))
        }
        guard let dict = object as? [String: Any] else {
            return .failure(ControlWireError("request is not a JSON object"))
        }
        guard let command = dict["command"] as? String, !command.isEmpty else {
            return .failure(ControlWireError("request has no \"command\" string"))
        }
        var args: [String] = []
        if let raw = dict["args"], !(raw is NSNull) {
            guard let list = raw as? [Any] else { return .failure(ControlWireError("\"args\" is not an array")) }
            for a in list {
                guard let s = a as? String else { return .failure(ControlWireError("\"args\" must hold strings only")) }
                args.append(s)
            }
        }
        return .success(Request(command: command, args: args))
    }

    /// The reply as one line (with its newline). JSON text that does not parse is sent as a
    /// JSON string, so a sidecar's bad JSON never breaks the framing.
    public static func encodeReply(_ r: ControlReply) -> String {
        var json: Any = NSNull()
        if !r.json.isEmpty {
            if let data = r.json.data(using: .utf8),
               let v = try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) {
                json = v
            } else {
                json = r.json
            }
        }
        let body: [String: Any] = ["status": Int(r.status), "text": r.text, "json": json]
        guard let data = try? JSONSerialization.data(withJSONObject: body, options: [.sortedKeys, .withoutEscapingSlashes]),
              let s = String(data: data, encoding: .utf8) else {
            return "{\"json\":null,\"status\":2,\"text\":\"reply could not be encoded\"}\n"
        }
        return s + "\n"
    }

    /// JSON text of a value built from dictionaries, arrays, strings, numbers, bools, NSNull.
    public static func jsonText(_ value: Any) -> String {
        guard JSONSerialization.isValidJSONObject([value]),
              let data = try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .fragmentsAllowed, .withoutEscapingSlashes]) else {
            return ""
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// The request line `swiftlet-ctl` sends.
    public static func encodeRequest(_ r: Request) -> String {
        jsonText(["command": r.command, "args": r.args]) + "\n"
    }
}

public struct ControlWireError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String
    init(_ d: String) { description = d }
}
