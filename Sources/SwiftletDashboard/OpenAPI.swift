import Foundation

/// The OpenAPI 3 document of /api/v5, served at /api/v5/openapi.json and kept in
/// docs/openapi.json (a system test checks the two are the same). One table: each row is an
/// endpoint the router serves.
enum OpenAPI {
    struct Op {
        var method: String
        var path: String
        var tag: String
        var summary: String
        var open = false
        var body: [String: String] = [:]
        var query: [String] = []
        var paged = false
    }

    static let ops: [Op] = [
        Op(method: "get", path: "/status", tag: "status", summary: "Health check", open: true),
        Op(method: "post", path: "/login", tag: "dashboard", summary: "Log in: a Bearer token", open: true,
           body: ["username": "string", "password": "string"]),
        Op(method: "post", path: "/logout", tag: "dashboard", summary: "Revoke the token"),
        Op(method: "get", path: "/users", tag: "dashboard", summary: "Dashboard admins"),
        Op(method: "post", path: "/users", tag: "dashboard", summary: "Add an admin",
           body: ["username": "string", "password": "string", "description": "string"]),
        Op(method: "delete", path: "/users/{username}", tag: "dashboard", summary: "Delete an admin"),
        Op(method: "post", path: "/users/{username}/change_pwd", tag: "dashboard", summary: "Change the own password",
           body: ["old_pwd": "string", "new_pwd": "string"]),
        Op(method: "get", path: "/api_key", tag: "dashboard", summary: "API keys"),
        Op(method: "post", path: "/api_key", tag: "dashboard", summary: "Create an API key (the secret is shown once)",
           body: ["name": "string", "desc": "string", "expired_at": "string", "enable": "boolean"]),
        Op(method: "delete", path: "/api_key/{name}", tag: "dashboard", summary: "Delete an API key"),
        Op(method: "get", path: "/nodes", tag: "nodes", summary: "The node"),
        Op(method: "get", path: "/nodes/{node}", tag: "nodes", summary: "One node"),
        Op(method: "get", path: "/stats", tag: "metrics", summary: "Counts: connections, sessions, subscriptions, retained, topics"),
        Op(method: "get", path: "/metrics", tag: "metrics", summary: "Message and byte counters"),
        Op(method: "get", path: "/monitor_current", tag: "metrics", summary: "Rates per second now"),
        Op(method: "get", path: "/monitor", tag: "metrics", summary: "Rates per second, the last ten minutes"),
        Op(method: "get", path: "/monitor/stream", tag: "metrics", summary: "Server-sent events: one monitor event per second"),
        Op(method: "get", path: "/prometheus/stats", tag: "metrics", summary: "Prometheus text exposition (also /metrics)", open: true),
        Op(method: "get", path: "/listeners", tag: "listeners", summary: "Listeners with their connections"),
        Op(method: "get", path: "/clients", tag: "clients", summary: "Clients",
           query: ["clientid", "like_clientid", "username", "like_username", "ip_address", "conn_state"], paged: true),
        Op(method: "get", path: "/clients/{clientid}", tag: "clients", summary: "One connected client"),
        Op(method: "delete", path: "/clients/{clientid}", tag: "clients", summary: "Kick a client"),
        Op(method: "get", path: "/clients/{clientid}/subscriptions", tag: "clients", summary: "A client's subscriptions"),
        Op(method: "post", path: "/clients/{clientid}/subscribe", tag: "clients", summary: "Subscribe a client",
           body: ["topic": "string", "qos": "integer"]),
        Op(method: "post", path: "/clients/{clientid}/unsubscribe", tag: "clients", summary: "Unsubscribe a client", body: ["topic": "string"]),
        Op(method: "get", path: "/sessions", tag: "sessions", summary: "Sessions", query: ["clientid", "conn_state"], paged: true),
        Op(method: "get", path: "/subscriptions", tag: "subscriptions", summary: "Subscriptions", query: ["clientid", "topic", "qos"], paged: true),
        Op(method: "get", path: "/topics", tag: "topics", summary: "Routes (subscribed filters)", query: ["topic"], paged: true),
        Op(method: "get", path: "/mqtt/retainer/messages", tag: "retainer", summary: "Retained messages", paged: true),
        Op(method: "get", path: "/mqtt/retainer/message/{topic}", tag: "retainer", summary: "One retained message (topic URL-encoded)"),
        Op(method: "delete", path: "/mqtt/retainer/message/{topic}", tag: "retainer", summary: "Delete a retained message"),
        Op(method: "post", path: "/publish", tag: "publish", summary: "Publish a message",
           body: ["topic": "string", "payload": "string", "qos": "integer", "retain": "boolean", "payload_encoding": "string"]),
        Op(method: "get", path: "/plugins", tag: "plugins", summary: "Sidecars with state, restarts and health"),
        Op(method: "put", path: "/plugins/{name}/load", tag: "plugins", summary: "Load (start) a plugin"),
        Op(method: "put", path: "/plugins/{name}/unload", tag: "plugins", summary: "Unload (stop) a plugin"),
        Op(method: "put", path: "/plugins/{name}/reload", tag: "plugins", summary: "Reload a plugin: a new process takes over, the old one finishes its requests"),
        Op(method: "get", path: "/plugins/{name}/config", tag: "plugins", summary: "A plugin's configuration, secrets masked"),
        Op(method: "get", path: "/recon/memory", tag: "recon", summary: "RSS, heap (mallinfo2) and memory by component"),
        Op(method: "get", path: "/recon/allocated", tag: "recon", summary: "Memory now and at its peak"),
        Op(method: "get", path: "/recon/node_stats", tag: "recon",
           summary: "Samples of connections, messages, CPU and each event loop", query: ["samples", "interval"]),
        Op(method: "post", path: "/recon/bin_leak", tag: "recon", summary: "Trim grown receive buffers and the heap"),
        Op(method: "get", path: "/recon/sidecars", tag: "recon", summary: "Each sidecar's memory, CPU and open files"),
        Op(method: "post", path: "/reload/config", tag: "reload", summary: "Read the configuration file again and apply what can change live"),
        Op(method: "get", path: "/authentication/password_based:built_in_database/users", tag: "authentication",
           summary: "Built-in MQTT users", paged: true),
        Op(method: "post", path: "/authentication/password_based:built_in_database/users", tag: "authentication",
           summary: "Add a built-in MQTT user", body: ["user_id": "string", "password": "string", "is_superuser": "boolean"]),
        Op(method: "put", path: "/authentication/password_based:built_in_database/users/{user_id}", tag: "authentication",
           summary: "Change a user's password", body: ["password": "string", "is_superuser": "boolean"]),
        Op(method: "delete", path: "/authentication/password_based:built_in_database/users/{user_id}", tag: "authentication",
           summary: "Delete a built-in MQTT user"),
        Op(method: "get", path: "/authorization/sources/built_in_database/rules", tag: "authorization", summary: "Built-in ACL rules, in order"),
        Op(method: "post", path: "/authorization/sources/built_in_database/rules", tag: "authorization",
           summary: "Add an ACL rule (at the end, or at position)", body: ["permission": "string", "username": "string", "clientid": "string", "ipaddr": "string", "action": "string", "topics": "array", "position": "integer"]),
        Op(method: "put", path: "/authorization/sources/built_in_database/rules/{n}", tag: "authorization",
           summary: "Replace ACL rule n (numbered from 1)", body: ["permission": "string", "username": "string", "clientid": "string", "ipaddr": "string", "action": "string", "topics": "array"]),
        Op(method: "delete", path: "/authorization/sources/built_in_database/rules/{n}", tag: "authorization",
           summary: "Delete ACL rule n"),
        Op(method: "post", path: "/authorization/sources/built_in_database/rules/{n}/move", tag: "authorization",
           summary: "Move ACL rule n to position", body: ["position": "integer"]),
        Op(method: "post", path: "/authorization/sources/built_in_database/reload", tag: "authorization", summary: "Reload the ACL file"),
        Op(method: "get", path: "/authorization/cache", tag: "authorization", summary: "Decision cache statistics"),
        Op(method: "delete", path: "/authorization/cache", tag: "authorization", summary: "Clear the decision cache"),
        Op(method: "get", path: "/banned", tag: "banned", summary: "Banned clients", paged: true),
        Op(method: "post", path: "/banned", tag: "banned", summary: "Ban a client id, user name or address",
           body: ["as": "string", "who": "string", "reason": "string", "until": "string"]),
        Op(method: "delete", path: "/banned/{as}/{who}", tag: "banned", summary: "Lift a ban"),
        Op(method: "post", path: "/ctl", tag: "ctl", summary: "Run a swiftlet-ctl command (including those plugins register)",
           body: ["args": "array"]),
    ]

    static let document: String = {
        var paths: [String: [String: Any]] = [:]
        for op in ops {
            var o: [String: Any] = ["tags": [op.tag], "summary": op.summary]
            var params: [[String: Any]] = []
            var i = op.path.startIndex
            while let open = op.path[i...].firstIndex(of: "{"), let close = op.path[open...].firstIndex(of: "}") {
                params.append(["name": String(op.path[op.path.index(after: open)..<close]), "in": "path", "required": true,
                               "schema": ["type": "string"]])
                i = close
            }
            for q in op.query { params.append(["name": q, "in": "query", "required": false, "schema": ["type": "string"]]) }
            if op.paged {
                params.append(["name": "page", "in": "query", "schema": ["type": "integer", "minimum": 1, "default": 1]])
                params.append(["name": "limit", "in": "query", "schema": ["type": "integer", "minimum": 1, "maximum": 1000, "default": 100]])
            }
            if !params.isEmpty { o["parameters"] = params }
            if !op.body.isEmpty {
                var props: [String: Any] = [:]
                for (k, t) in op.body { props[k] = t == "array" ? ["type": "array", "items": ["type": "string"]] : ["type": t] }
                o["requestBody"] = ["required": true, "content": ["application/json": ["schema": [
                    "type": "object", "additionalProperties": false, "properties": props]]]]
            }
            var responses: [String: Any] = [
                "200": ["description": "OK", "content": ["application/json": ["schema": op.paged ? ["$ref": "#/components/schemas/Page"] : [:]]]],
                "400": ["$ref": "#/components/responses/Error"],
            ]
            if op.method == "delete" { responses["204"] = ["description": "Done"] }
            if !op.open {
                responses["401"] = ["$ref": "#/components/responses/Error"]
                responses["403"] = ["$ref": "#/components/responses/Error"]
            } else {
                o["security"] = [Any]()
            }
            if op.path.contains("{") { responses["404"] = ["$ref": "#/components/responses/Error"] }
            if op.path == "/login" { responses["429"] = ["$ref": "#/components/responses/Error"] }
            o["responses"] = responses
            paths[op.path, default: [:]][op.method] = o
        }
        let doc: [String: Any] = [
            "openapi": "3.0.3",
            "info": ["title": "Swiftlet REST API", "version": "5", "description": "EMQX 5 compatible management API (docs/api.md)."],
            "servers": [["url": "/api/v5"]],
            "security": [["bearerAuth": [Any]()], ["basicAuth": [Any]()]],
            "paths": paths,
            "components": [
                "securitySchemes": ["bearerAuth": ["type": "http", "scheme": "bearer"],
                                    "basicAuth": ["type": "http", "scheme": "basic", "description": "API key and secret"]],
                "schemas": [
                    "Error": ["type": "object", "required": ["code", "message"],
                              "properties": ["code": ["type": "string"], "message": ["type": "string"]]],
                    "Page": ["type": "object", "properties": [
                        "data": ["type": "array", "items": ["type": "object"]],
                        "meta": ["type": "object", "properties": ["page": ["type": "integer"], "limit": ["type": "integer"],
                                                                  "count": ["type": "integer"], "hasnext": ["type": "boolean"]]]]],
                ],
                "responses": ["Error": ["description": "An error", "content": ["application/json": ["schema": ["$ref": "#/components/schemas/Error"]]]]],
            ],
        ]
        let data = (try? JSONSerialization.data(withJSONObject: doc, options: [.sortedKeys, .prettyPrinted])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }()
}
