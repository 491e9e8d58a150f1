import Foundation
import WardenCore
import WardenPKI
import WardenUpdate

/// The TUF client behind `warden-agent tuf-client`, following the tuf-conformance client-under-test CLI
/// (`CLIENT-CLI.md`): `init ROOT`, `refresh`, `download`. All verification is ``TUFUpdater``'s; this type only
/// wires the trusted-metadata directory, the HTTP fetcher and the target directory together.
public struct TUFClient: Sendable {
    /// The directory holding the trusted metadata under non-versioned names (`root.json`, `timestamp.json`, …).
    public let metadataDirectory: String

    /// The PEM file of the only CAs trusted for HTTPS (the fleet CA); nil for the system trust store.
    public let caFile: String?

    /// A client over `metadataDirectory`, trusting only `caFile` for HTTPS when one is given.
    public init(metadataDirectory: String, caFile: String? = nil) {
        self.metadataDirectory = metadataDirectory
        self.caFile = caFile
    }

    /// Installs `trustedRootPath` as the trusted root (`root.json`). No network access.
    /// - Throws: `.badInput` if the file is unreadable or not a root metadata file signed by its own threshold.
    public func initialize(trustedRootPath: String) throws {
        let bytes = try SecureFile.read(trustedRootPath, limit: TUFUpdater.Limits().rootBytes, what: "trusted root")
        try TUFUpdater.provision(trustedRoot: bytes, metadataDirectory: metadataDirectory)
    }

    /// Runs the TUF 1.0 refresh (root chain, timestamp, snapshot, targets) against `metadataURL`.
    public func refresh(metadataURL: URL, now: Date = Date()) async throws {
        var updater = try updater(metadataURL: metadataURL, targetsURL: nil)
        try await updater.refresh(now: now)
    }

    /// Refreshes, then downloads `targetName` from `targetsURL` into `targetDirectory` after verifying its length and
    /// every hash against the trusted targets metadata. A file already there that verifies is not fetched again.
    /// - Returns: the path of the verified file (`targetDirectory/<targetName with '/' as %2F>`).
    @discardableResult
    public func download(targetName: String, metadataURL: URL, targetsURL: URL, targetDirectory: String, now: Date = Date()) async throws -> String {
        guard TUFPath.isSafe(targetName) else {
            throw WardenError.badInput("target name '\(targetName.prefix(200))' is not a safe repository path")
        }
        var updater = try updater(metadataURL: metadataURL, targetsURL: targetsURL)
        try await updater.refresh(now: now)
        guard let info = updater.targetInfo(targetName) else {
            throw WardenError.notFound("the trusted targets metadata has no target '\(targetName.prefix(200))'")
        }
        let destination = targetDirectory + "/" + Self.localName(targetName)
        if let cached = try? SecureFile.read(destination, limit: Int(clamping: info.length), what: "cached target"),
            (try? info.verify(cached, name: targetName)) != nil {
            return destination
        }
        let bytes = try await updater.download(targetName, info: info)
        try SecureFile.ensureDirectory(targetDirectory, mode: 0o755)
        try SecureFile.writeAtomically(bytes, to: destination)
        return destination
    }

    /// The file name of a target inside the target directory: one path segment, `/` and `%` percent-encoded.
    public static func localName(_ targetName: String) -> String {
        var name = ""
        for character in targetName {
            switch character {
            case "%": name += "%25"
            case "/": name += "%2F"
            default: name.append(character)
            }
        }
        return name
    }

    func updater(metadataURL: URL, targetsURL: URL?) throws -> TUFUpdater {
        guard SecureFile.mode(of: metadataDirectory + "/root.json") != nil else {
            throw WardenError.notFound("'\(metadataDirectory)/root.json' does not exist; run 'tuf-client init ROOT' first")
        }
        return TUFUpdater(metadataDirectory: metadataDirectory, fetcher: try HTTPFetcher(metadataBaseURL: metadataURL, targetsBaseURL: targetsURL, caFile: caFile))
    }
}
