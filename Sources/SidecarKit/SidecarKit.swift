/// SidecarKit: the library every Swift sidecar uses (issue 4). Filled in by its own change.
public enum SidecarKit {
    public static let protocolVersion: UInt16 = 1
}
