import SwiftletRouting
import Logging

/// A connection's logger: the broker's, with `mqtt.peer` and `mqtt.client_id` added only when
/// a message passes the level. A `Logger` stored per connection with that metadata cost about
/// 400 B of heap for every idle connection (its own metadata dictionary).
struct ConnectionLog {
    let handler: MQTTConnectionHandler

    func log(_ level: Logger.Level, _ message: @autoclosure () -> Logger.Message,
             metadata: @autoclosure () -> Logger.Metadata? = nil,
             file: String = #fileID, function: String = #function, line: UInt = #line) {
        let base = handler.broker.logger
        guard base.logLevel <= level else { return }
        var l = base
        l[metadataKey: "mqtt.peer"] = "\(handler.peer)"
        if !handler.clientId.isEmpty { l[metadataKey: "mqtt.client_id"] = "\(handler.clientId)" }
        l.log(level: level, message(), metadata: metadata(), file: file, function: function, line: line)
    }

    func trace(_ message: @autoclosure () -> Logger.Message, metadata: @autoclosure () -> Logger.Metadata? = nil,
               file: String = #fileID, function: String = #function, line: UInt = #line) {
        log(.trace, message(), metadata: metadata(), file: file, function: function, line: line)
    }

    func debug(_ message: @autoclosure () -> Logger.Message, metadata: @autoclosure () -> Logger.Metadata? = nil,
               file: String = #fileID, function: String = #function, line: UInt = #line) {
        log(.debug, message(), metadata: metadata(), file: file, function: function, line: line)
    }

    func info(_ message: @autoclosure () -> Logger.Message, metadata: @autoclosure () -> Logger.Metadata? = nil,
              file: String = #fileID, function: String = #function, line: UInt = #line) {
        log(.info, message(), metadata: metadata(), file: file, function: function, line: line)
    }

    func warning(_ message: @autoclosure () -> Logger.Message, metadata: @autoclosure () -> Logger.Metadata? = nil,
                 file: String = #fileID, function: String = #function, line: UInt = #line) {
        log(.warning, message(), metadata: metadata(), file: file, function: function, line: line)
    }

    func error(_ message: @autoclosure () -> Logger.Message, metadata: @autoclosure () -> Logger.Metadata? = nil,
               file: String = #fileID, function: String = #function, line: UInt = #line) {
        log(.error, message(), metadata: metadata(), file: file, function: function, line: line)
    }
}
