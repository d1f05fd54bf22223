/// Why a `Sidecar` cannot be created.
public enum SidecarError: Error, Equatable, CustomStringConvertible {
    case noSocket
    case invalidName(String)

    public var description: String {
        switch self {
        case .noSocket: return "no broker socket: set SWIFTLET_SOCKET or pass --socket PATH"
        case .invalidName(let n): return "sidecar name \(n.debugDescription) must be 1-64 characters of [A-Za-z0-9._-]"
        }
    }

    static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 64 && name.unicodeScalars.allSatisfy {
            $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "-_.".unicodeScalars.contains($0))
        }
    }
}
