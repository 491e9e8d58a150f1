import Foundation
import WardenCore
import WardenPKI

/// A Warden home directory: the CA files, the profiles and the registry database.
public struct WardenHome: Sendable {
    /// The directory.
    public let path: String

    /// Uses `path` as the home (created on first write with mode 0700).
    public init(path: String) {
        // Keep the path as given but without a trailing slash, so messages name it the way the user typed it.
        var cleaned = path
        while cleaned.count > 1 && cleaned.hasSuffix("/") { cleaned.removeLast() }
        self.path = cleaned.isEmpty ? "." : cleaned
    }

    /// The CA file layout.
    public var ca: CALayout { CALayout(home: path) }
    /// The registry database.
    public var registryPath: String { path + "/warden.sqlite" }
}
