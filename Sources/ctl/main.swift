import ArgumentParser
import SwiftletCore
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `swiftlet-ctl`: runs one command in a running broker over its control socket
/// (docs/operations.md). Exit codes: 0 ok, 1 usage error or unknown command, 2 failed,
/// 3 broker not running.
struct SwiftletCtl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "swiftlet-ctl",
        abstract: "Controls a running swiftlet broker over its control socket.",
        discussion: """
            Run `swiftlet-ctl help` for the commands the broker knows, including those registered by sidecars.
            Exit codes: 0 ok, 1 usage error or unknown command, 2 the command failed, 3 the broker is not running.
            """)

    @Option(name: .long, help: "Control socket of the broker (default: $SWIFTLET_CTL_SOCKET, else data/ctl.sock).")
    var socket: String?

    @Flag(name: .long, help: "Print the result as JSON instead of a table.")
    var json = false

    @Option(name: .long, help: "Seconds to wait for the answer.")
    var timeout: Int = 90

    @Argument(parsing: .captureForPassthrough, help: "The command and its arguments (default: help).")
    var command: [String] = []

    mutating func run() throws {
        var words = command
        var asJSON = json
        // `swiftlet-ctl clients list --json` is accepted as well as `--json clients list`.
        if words.count > 1, words.last == "--json" {
            words.removeLast()
            asJSON = true
        }
        if words.first == "--" { words.removeFirst() }
        if words.first == "--help" || words.first == "-h" { words = ["help"] }
        let name = words.first ?? "help"
        let args = Array(words.dropFirst())
        let path = socket ?? ProcessInfo.processInfo.environment["SWIFTLET_CTL_SOCKET"] ?? "data/ctl.sock"

        let line: String
        do {
            line = try CtlSocket.request(path: path, line: Self.encode(name, args), timeout: timeout)
        } catch let e as CtlSocket.Failure {
            if name == "help", e.exitCode == 3 {
                // No broker to ask: the usage and the built-in commands, and why the list may be short.
                print(Self.offlineHelp)
                FileHandle.standardError.write(Data((e.message + "; commands that sidecars register are listed when it runs\n").utf8))
                return
            }
            FileHandle.standardError.write(Data((e.message + "\n").utf8))
            throw ExitCode(e.exitCode)
        }
        guard let data = line.data(using: .utf8),
              let reply = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let status = reply["status"] as? Int else {
            FileHandle.standardError.write(Data("swiftlet-ctl: the broker sent an answer that is not a reply\n".utf8))
            throw ExitCode(2)
        }
        let text = reply["text"] as? String ?? ""
        let body = reply["json"].flatMap { $0 is NSNull ? nil : $0 }
        if asJSON {
            if let body {
                print(Self.pretty(body))
            } else if status == 0 {
                print(Self.pretty(["text": text]))
            }
            if status != 0, !text.isEmpty { FileHandle.standardError.write(Data((text + "\n").utf8)) }
        } else if status == 0 {
            if !text.isEmpty { print(text) }
        } else if !text.isEmpty {
            FileHandle.standardError.write(Data((text + "\n").utf8))
        }
        if status != 0 { throw ExitCode(Int32(clamping: status)) }
    }

    static var offlineHelp: String {
        var lines = ["Usage: swiftlet-ctl [--socket PATH] [--json] [--timeout SECONDS] <command> [args...]", "",
                     "Exit codes: 0 ok, 1 usage error or unknown command, 2 the command failed, 3 the broker is not running.",
                     "", "Commands:"]
        for (_, usage) in Broker.builtinCommandUsages {
            for u in usage.split(separator: "\n") { lines.append("  \(u)") }
        }
        return lines.joined(separator: "\n")
    }

    static func encode(_ command: String, _ args: [String]) -> String {
        let data = try! JSONSerialization.data(withJSONObject: ["command": command, "args": args], options: [.sortedKeys])
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    static func pretty(_ value: Any) -> String {
        guard let data = try? JSONSerialization.data(withJSONObject: value, options: [.prettyPrinted, .sortedKeys, .fragmentsAllowed, .withoutEscapingSlashes]) else {
            return "null"
        }
        return String(decoding: data, as: UTF8.self)
    }
}

/// One request and its one-line reply over a Unix domain socket (plain POSIX).
enum CtlSocket {
    struct Failure: Error {
        var message: String
        var exitCode: Int32
    }

    static func request(path: String, line: String, timeout: Int) throws -> String {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let capacity = MemoryLayout.size(ofValue: addr.sun_path)
        let bytes = Array(path.utf8)
        guard !bytes.isEmpty, bytes.count < capacity else {
            throw Failure(message: "swiftlet-ctl: socket path \(path) is longer than \(capacity - 1) bytes", exitCode: 1)
        }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        #if canImport(Glibc)
        let fd = Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let fd = Darwin.socket(AF_UNIX, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw Failure(message: "swiftlet-ctl: socket(): \(errorText())", exitCode: 2) }
        defer { close(fd) }
        var tv = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        if rc != 0 {
            let err = errno
            let why = String(cString: strerror(err))
            if err == ENOENT || err == ECONNREFUSED || err == ENOTSOCK {
                throw Failure(message: "swiftlet-ctl: the broker is not running (cannot connect to control socket \(path): \(why))",
                              exitCode: 3)
            }
            throw Failure(message: "swiftlet-ctl: cannot connect to control socket \(path): \(why)", exitCode: 3)
        }
        var out = Array(line.utf8)
        var sent = 0
        while sent < out.count {
            let n = out.withUnsafeBytes { send(fd, $0.baseAddress! + sent, out.count - sent, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw Failure(message: "swiftlet-ctl: sending to \(path) failed: \(errorText())", exitCode: 2)
            }
            sent += n
        }
        out.removeAll()
        var reply: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK {
                    throw Failure(message: "swiftlet-ctl: no answer from the broker within \(timeout)s", exitCode: 2)
                }
                throw Failure(message: "swiftlet-ctl: reading from \(path) failed: \(errorText())", exitCode: 2)
            }
            if n == 0 { break }
            if let nl = chunk[0..<n].firstIndex(of: UInt8(ascii: "\n")) {
                reply += chunk[0..<nl]
                return String(decoding: reply, as: UTF8.self)
            }
            reply += chunk[0..<n]
        }
        if reply.isEmpty {
            throw Failure(message: "swiftlet-ctl: the broker closed the control connection without answering", exitCode: 2)
        }
        return String(decoding: reply, as: UTF8.self)
    }

    static func errorText() -> String { String(cString: strerror(errno)) }
}

SwiftletCtl.main()
