import AuthHTTP
import CCurl
import Foundation
import Logging

// The only file that touches libcurl: every CURL / CURLM handle and curl_slist is created,
// used and freed here, and every CURLcode / CURLMcode becomes a `CurlError`.
//
// One curl multi handle, driven by one dedicated thread, runs every transfer: requests are
// queued from any task, added to the multi handle on its thread, and completed through a
// continuation. The multi handle's connection cache keeps connections to the service open
// (HTTP keep-alive) and reuses them across requests; finished easy handles are kept for
// the next request (curl_easy_reset keeps their connection and DNS caches).

/// A failed transfer.
enum CurlError: Error, CustomStringConvertible, Equatable {
    /// A transfer error (timeout, connection refused, TLS ...): curl's code and its message.
    case transfer(code: Int, message: String)
    /// A curl_multi_* call failed.
    case multi(code: Int, message: String)
    /// curl_easy_setopt refused an option.
    case option(name: String, code: Int, message: String)
    /// The response body is longer than the limit; it was not read further.
    case bodyTooLarge(limit: Int)
    case shutDown

    var description: String {
        switch self {
        case .transfer(let code, let message): return "\(message) (curl error \(code))"
        case .multi(let code, let message): return "curl multi error \(code): \(message)"
        case .option(let name, let code, let message): return "curl option \(name): \(message) (\(code))"
        case .bodyTooLarge(let limit): return "response body over \(limit) bytes, refused"
        case .shutDown: return "HTTP client shut down"
        }
    }

    static func check(_ code: CURLcode, _ name: String) throws {
        guard code != CURLE_OK else { return }
        throw CurlError.option(name: name, code: Int(code.rawValue), message: String(cString: curl_easy_strerror(code)))
    }

    static func check(_ code: CURLMcode) throws {
        guard code != CURLM_OK else { return }
        throw CurlError.multi(code: Int(code.rawValue), message: String(cString: curl_multi_strerror(code)))
    }
}

struct HTTPResponse: Sendable {
    var status: Int
    var body: [UInt8]
}

/// An HTTP client on libcurl's multi interface. Thread-safe; `perform` may be called from
/// any number of tasks at once.
final class CurlClient: @unchecked Sendable {
    private let multi: UnsafeMutableRawPointer
    private let maxBody: Int
    private let logger: Logger
    private let lock = NSLock()
    // Guarded by `lock`:
    private var queued: [Transfer] = []
    private var stopping = false
    // Owned by the curl thread:
    private var running: [UnsafeMutableRawPointer: Transfer] = [:]
    private var idle: [UnsafeMutableRawPointer] = []
    private let maxIdle: Int
    private var thread: Thread?

    private static let globalInit: CURLcode = swiftlet_curl_global_init()

    init(maxConnections: Int, maxBody: Int, logger: Logger) throws {
        try CurlError.check(Self.globalInit, "curl_global_init")
        guard let m = curl_multi_init() else { throw CurlError.multi(code: -1, message: "curl_multi_init failed") }
        multi = m
        self.maxBody = maxBody
        self.maxIdle = maxConnections
        self.logger = logger
        try CurlError.check(swiftlet_curl_multi_setopt_long(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, maxConnections))
        try CurlError.check(swiftlet_curl_multi_setopt_long(m, CURLMOPT_MAXCONNECTS, maxConnections))
        let t = Thread { [self] in self.loop() }
        t.name = "curl-multi"
        thread = t
        t.start()
    }

    /// Stops the thread: transfers still queued or running fail with `.shutDown`.
    func shutdown() {
        // Every wakeup happens under the lock, before the curl thread can see `stopping`
        // and free the multi handle.
        lock.withLock {
            stopping = true
            _ = curl_multi_wakeup(multi)
        }
    }

    func perform(_ request: HTTPRequest) async throws -> HTTPResponse {
        try await withCheckedThrowingContinuation { (cont: CheckedContinuation<HTTPResponse, Error>) in
            let t = Transfer(request: request, maxBody: maxBody, continuation: cont)
            let accepted = lock.withLock { () -> Bool in
                guard !stopping else { return false }
                queued.append(t)
                _ = curl_multi_wakeup(multi)
                return true
            }
            if !accepted { cont.resume(throwing: CurlError.shutDown) }
        }
    }

    // MARK: - the curl thread

    private func loop() {
        var stillRunning: Int32 = 0
        while true {
            let (new, stop) = lock.withLock { () -> ([Transfer], Bool) in
                defer { queued.removeAll(keepingCapacity: true) }
                return (queued, stopping)
            }
            if stop {
                for t in new { t.finish(.failure(CurlError.shutDown)) }
                break
            }
            for t in new { start(t) }
            let code = curl_multi_perform(multi, &stillRunning)
            if code != CURLM_OK {
                logger.error("curl_multi_perform failed", metadata: ["curl.error": "\(String(cString: curl_multi_strerror(code)))"])
            }
            collectFinished()
            var numfds: Int32 = 0
            _ = curl_multi_poll(multi, nil, 0, 1000, &numfds)
        }
        for (easy, t) in running {
            curl_multi_remove_handle(multi, easy)
            curl_easy_cleanup(easy)
            t.release()
            t.finish(.failure(CurlError.shutDown))
        }
        running.removeAll()
        for easy in idle { curl_easy_cleanup(easy) }
        idle.removeAll()
        curl_multi_cleanup(multi)
    }

    private func start(_ t: Transfer) {
        let easy: UnsafeMutableRawPointer
        if let reused = idle.popLast() {
            easy = reused
            curl_easy_reset(easy)
        } else if let fresh = curl_easy_init() {
            easy = fresh
        } else {
            return t.finish(.failure(CurlError.transfer(code: -1, message: "curl_easy_init failed")))
        }
        do {
            try t.configure(easy)
            try CurlError.check(curl_multi_add_handle(multi, easy))
            running[easy] = t
        } catch {
            t.release()
            recycle(easy)
            t.finish(.failure(error))
        }
    }

    private func collectFinished() {
        var left: Int32 = 0
        while let msg = curl_multi_info_read(multi, &left) {
            guard msg.pointee.msg == CURLMSG_DONE, let easy = msg.pointee.easy_handle else { continue }
            let result = msg.pointee.data.result
            curl_multi_remove_handle(multi, easy)
            guard let t = running.removeValue(forKey: easy) else {
                curl_easy_cleanup(easy)
                continue
            }
            let outcome = t.outcome(result, easy)
            t.release()
            recycle(easy)
            t.finish(outcome)
        }
    }

    private func recycle(_ easy: UnsafeMutableRawPointer) {
        if idle.count < maxIdle {
            idle.append(easy)
        } else {
            curl_easy_cleanup(easy)
        }
    }
}

/// One request in flight: its options, the body read so far, and who waits for it.
private final class Transfer {
    let request: HTTPRequest
    let maxBody: Int
    var body: [UInt8] = []
    var overLimit = false
    private var continuation: CheckedContinuation<HTTPResponse, Error>?
    private var headers: UnsafeMutablePointer<curl_slist>?
    private let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
    private var selfRef: Unmanaged<Transfer>?

    init(request: HTTPRequest, maxBody: Int, continuation: CheckedContinuation<HTTPResponse, Error>) {
        self.request = request
        self.maxBody = maxBody
        self.continuation = continuation
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
    }

    deinit {
        if let headers { curl_slist_free_all(headers) }
        errorBuffer.deallocate()
    }

    func configure(_ easy: UnsafeMutableRawPointer) throws {
        func long(_ o: CURLoption, _ v: Int, _ name: String) throws {
            try CurlError.check(swiftlet_curl_easy_setopt_long(easy, o, v), name)
        }
        func string(_ o: CURLoption, _ v: String, _ name: String) throws {
            try CurlError.check(swiftlet_curl_easy_setopt_string(easy, o, v), name)   // curl copies strings
        }
        let r = request
        try string(CURLOPT_URL, r.url, "url")
        try string(CURLOPT_PROTOCOLS_STR, "http,https", "protocols")
        try long(CURLOPT_NOSIGNAL, 1, "nosignal")
        try long(CURLOPT_TIMEOUT_MS, max(1, Int(r.timeout * 1000)), "timeout")
        try long(CURLOPT_FOLLOWLOCATION, 0, "followlocation")
        try long(CURLOPT_TCP_KEEPALIVE, 1, "tcp_keepalive")
        try CurlError.check(swiftlet_curl_easy_setopt_off_t(easy, CURLOPT_MAXFILESIZE_LARGE, curl_off_t(maxBody)), "maxfilesize")
        try CurlError.check(swiftlet_curl_easy_setopt_pointer(easy, CURLOPT_ERRORBUFFER, errorBuffer), "errorbuffer")
        selfRef = Unmanaged.passRetained(self)
        try CurlError.check(swiftlet_curl_easy_setopt_pointer(easy, CURLOPT_WRITEDATA, selfRef!.toOpaque()), "writedata")
        try CurlError.check(swiftlet_curl_easy_setopt_write_function(easy, { data, size, count, user in
            let t = Unmanaged<Transfer>.fromOpaque(user!).takeUnretainedValue()
            let n = size * count
            guard t.body.count + n <= t.maxBody else {
                t.overLimit = true
                return 0            // curl aborts the transfer with CURLE_WRITE_ERROR
            }
            if n > 0, let data {
                data.withMemoryRebound(to: UInt8.self, capacity: n) { t.body.append(contentsOf: UnsafeBufferPointer(start: $0, count: n)) }
            }
            return n
        }), "writefunction")
        switch r.method {
        case .get:
            try long(CURLOPT_HTTPGET, 1, "httpget")
        case .post:
            let body = r.body ?? []
            try long(CURLOPT_POST, 1, "post")
            try CurlError.check(swiftlet_curl_easy_setopt_off_t(easy, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(body.count)), "postfieldsize")
            var bytes = body.isEmpty ? [0] : body       // COPYPOSTFIELDS copies POSTFIELDSIZE bytes
            try bytes.withUnsafeMutableBytes { buf in
                try CurlError.check(swiftlet_curl_easy_setopt_pointer(easy, CURLOPT_COPYPOSTFIELDS, buf.baseAddress), "copypostfields")
            }
        }
        // "Expect: 100-continue" costs a round trip on larger POSTs; the service answers at once.
        for line in r.headers + ["Expect:"] {
            guard let next = curl_slist_append(headers, line) else {
                throw CurlError.option(name: "httpheader", code: -1, message: "out of memory")
            }
            headers = next
        }
        try CurlError.check(swiftlet_curl_easy_setopt_pointer(easy, CURLOPT_HTTPHEADER, headers), "httpheader")
        if let ca = r.tls.caFile { try string(CURLOPT_CAINFO, ca, "cainfo") }
        if let cert = r.tls.certFile { try string(CURLOPT_SSLCERT, cert, "sslcert") }
        if let key = r.tls.keyFile { try string(CURLOPT_SSLKEY, key, "sslkey") }
        try long(CURLOPT_SSL_VERIFYPEER, r.tls.verify ? 1 : 0, "ssl_verifypeer")
        try long(CURLOPT_SSL_VERIFYHOST, r.tls.verify ? 2 : 0, "ssl_verifyhost")
    }

    func outcome(_ code: CURLcode, _ easy: UnsafeMutableRawPointer) -> Result<HTTPResponse, Error> {
        if overLimit || code == CURLE_FILESIZE_EXCEEDED { return .failure(CurlError.bodyTooLarge(limit: maxBody)) }
        guard code == CURLE_OK else {
            let detail = String(cString: errorBuffer)
            let message = detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail
            return .failure(CurlError.transfer(code: Int(code.rawValue), message: message))
        }
        var status = 0
        _ = swiftlet_curl_easy_getinfo_long(easy, CURLINFO_RESPONSE_CODE, &status)
        return .success(HTTPResponse(status: status, body: body))
    }

    /// Drops what ties this transfer to its easy handle, which is then reset for reuse.
    func release() {
        selfRef?.release()
        selfRef = nil
    }

    func finish(_ result: Result<HTTPResponse, Error>) {
        continuation?.resume(with: result)
        continuation = nil
    }
}
