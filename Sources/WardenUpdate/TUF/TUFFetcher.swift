import Foundation
import WardenCore

/// What a fetcher is asked for: a metadata file (`timestamp.json`, `3.root.json`, ...) or a target file
/// (`<sha256>.<name>`, the consistent-snapshot form).
public enum TUFFetchKind: Sendable, Equatable {
    /// A file under the repository's metadata directory.
    case metadata
    /// A file under the repository's targets directory.
    case target
}

/// Supplies repository bytes to ``TUFUpdater``: HTTPS, MQTT, a local mirror. The updater never trusts them; it
/// verifies everything. A fetcher must stop reading once `maxLength` bytes are exceeded (endless-data protection)
/// and should bound its own time (slow-retrieval protection).
public protocol TUFFetcher: Sendable {
    /// The bytes of `path`, or nil if the repository does not have it (HTTP 404): for metadata, a missing
    /// `N.root.json` ends the root chain walk.
    /// - Throws: on transport failure, or `.badInput` if the file is longer than `maxLength`.
    func fetch(_ kind: TUFFetchKind, path: String, maxLength: Int) async throws -> [UInt8]?
}

/// A fetcher over a local directory laid out like the HTTPS repository (`metadata/`, `targets/`), e.g. a USB stick or
/// the authority's own `$WARDEN_HOME/tuf/repository`.
public struct DirectoryFetcher: TUFFetcher {
    /// The directory holding `metadata/` and `targets/`.
    public let directory: String

    /// A fetcher reading from `directory`.
    public init(directory: String) { self.directory = directory }

    /// Reads `metadata/<path>` or `targets/<path>`; nil if absent; refuses unsafe paths and files over `maxLength`.
    public func fetch(_ kind: TUFFetchKind, path: String, maxLength: Int) async throws -> [UInt8]? {
        guard TUFPath.isSafe(path) else { throw WardenError.badInput("unsafe repository path '\(path.prefix(100))'") }
        let full = directory + (kind == .metadata ? "/metadata/" : "/targets/") + path
        guard FileManager.default.fileExists(atPath: full) else { return nil }
        return try SecureFile.read(full, limit: maxLength, what: "repository file")
    }
}

/// Repository path rules shared by fetchers and servers.
public enum TUFPath {
    /// A relative path of `[A-Za-z0-9._@+-]` segments separated by `/`, without `.`/`..` segments, at most 512 bytes.
    public static func isSafe(_ path: String) -> Bool {
        let bytes = Array(path.utf8)
        guard !bytes.isEmpty, bytes.count <= 512 else { return false }
        let allowed = bytes.allSatisfy {
            ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39)
                || [0x2E, 0x5F, 0x2D, 0x2F, 0x40, 0x2B].contains($0)
        }
        guard allowed else { return false }
        return path.split(separator: "/", omittingEmptySubsequences: false).allSatisfy { !$0.isEmpty && $0 != "." && $0 != ".." }
    }

    /// The consistent-snapshot download name of a target (TUF 1.0 §5.7.3): the hash prefixed to the last path segment.
    public static func consistentTargetPath(_ name: String, hash: String) -> String {
        guard let slash = name.lastIndex(of: "/") else { return hash + "." + name }
        return String(name[...slash]) + hash + "." + String(name[name.index(after: slash)...])
    }
}
