import SidecarKit
print("swiftlet-sidecar-template: not implemented yet (protocol \(SidecarKit.protocolVersion))")
