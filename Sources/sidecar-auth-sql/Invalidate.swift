import Foundation
import NIOConcurrencyHelpers
import SidecarKit

/// The sidecar, once made: the ctl command's handler is registered before it exists.
final class SidecarBox: Sendable {
    private let value = NIOLockedValueBox<Sidecar?>(nil)
    var sidecar: Sidecar? {
        get { value.withLockedValue { $0 } }
        set { value.withLockedValue { $0 = newValue } }
    }
}

/// `swiftlet-ctl <plugin> invalidate user NAME | client ID | all`: sends INVALIDATE, so the
/// broker drops the decisions it cached for that user (after a password or ACL change).
func invalidateCommand(_ plugin: String, _ args: [String], _ sidecar: Sidecar?) async -> CommandResult {
    let usage = "\(plugin) invalidate user NAME | client ID | all"
    guard args.first == "invalidate", let sidecar else { return .usage(usage) }
    let scope: InvalidateScope
    let what: String
    switch Array(args.dropFirst()) {
    case let a where a.count == 2 && a[0] == "user": scope = .username(a[1]); what = "user \(a[1])"
    case let a where a.count == 2 && a[0] == "client": scope = .clientId(a[1]); what = "client \(a[1])"
    case ["all"]: scope = .all; what = "all"
    default: return .usage(usage)
    }
    guard await sidecar.invalidate(scope) else { return .failed("\(plugin): not connected to the broker") }
    return .ok("\(plugin): cached decisions dropped for \(what)")
}
