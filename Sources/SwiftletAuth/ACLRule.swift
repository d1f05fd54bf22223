import AuthBackends

/// One emqttd-style ACL rule: `{allow|deny, Who, Access, Topics}` (emqttd's etc/acl.conf), in
/// TOML. The semantics are AuthBackends' `EmqttdACL`, shared with the database sidecars:
/// the first rule that matches decides; `%u`/`%c` are substituted literally.
public typealias ACLRule = EmqttdACL.Rule

/// An IPv4 or IPv6 network of an `ipaddr` rule (AuthBackends).
public typealias CIDR = AuthBackends.CIDR

extension EmqttdACL.Rule {
    /// nil when the rule does not apply; else allow/deny.
    public func decide(_ c: ClientInfo, access a: ACLAccess, topic: String) -> Bool? {
        decide(EmqttdACL.Client(clientId: c.clientId, username: c.username, ipAddress: c.peerAddress),
               a == .publish ? .publish : .subscribe, topic: topic)
    }
}
