import AuthBackends
import AuthLDAP
import Logging

/// The plugin's directory: ConnectionPools of LDAPConnections.
///
/// - `binds`: where the users' binds run. A bind changes the connection's identity, so these
///   connections are never used to search.
/// - `searches` (search mode): connections bound as the service account (`bind_dn`) when they
///   open, used only to search (the user's entry, the superuser group, ACL attributes).
///
/// Every connection opens to the first server of `servers` that answers; one that breaks is
/// reopened in the background with backoff (ConnectionPool), so a stopped server's requests
/// move to the next. With no connection up, requests are answered `error` at once.
final class PooledDirectory: LDAPDirectory {
    let binds: ConnectionPool<LDAPConnection>
    let searches: ConnectionPool<LDAPConnection>?

    init(settings: AuthLDAPSettings, logger: Logger) {
        func pool(_ name: String, bindAs: (dn: String, password: String)?) -> ConnectionPool<LDAPConnection> {
            var l = logger
            l[metadataKey: "ldap.pool"] = "\(name)"
            let options = ConnectionPool<LDAPConnection>.Options(
                size: settings.poolSize, maxQueue: settings.maxQueue,
                acquireTimeout: .milliseconds(Int64(settings.timeout * 1000)),
                reconnectInitial: .milliseconds(100), reconnectMax: .milliseconds(Int64(settings.autoReconnect * 1000)),
                keepAlive: settings.keepAlive.map { .milliseconds(Int64($0 * 1000)) })
            let driver = ConnectionPool<LDAPConnection>.Driver(
                connect: { try LDAPConnection.open(settings, bindAs: bindAs) },
                ping: { try $0.ping() }, close: { $0.close() }, isHealthy: { !$0.broken })
            return ConnectionPool(options: options, driver: driver, logger: l)
        }
        binds = pool("binds", bindAs: nil)
        searches = settings.search.map { pool("searches", bindAs: ($0.bindDN, $0.bindPassword)) }
    }

    func start() {
        binds.start()
        searches?.start()
    }

    func shutdown() async {
        await binds.shutdown()
        await searches?.shutdown()
    }

    var isReachable: Bool { binds.isReachable && (searches?.isReachable ?? true) }

    func bind(dn: String, password: [UInt8]) async throws -> LDAPBindResult {
        try await binds.withConnection { try $0.bind(dn: dn, password: password) }
    }

    func search(_ search: LDAPSearch) async throws -> LDAPSearchResult {
        guard let searches else { throw BackendError.query("search needs bind_dn (search mode)") }
        return try await searches.withConnection { try $0.search(search) }
    }
}
