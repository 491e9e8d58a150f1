import Foundation
import WardenCore

extension PolicyDocument {
    /// The fleet default, identical to the shipped `policies/default.json` (a test keeps them equal).
    public static let builtInDefault = PolicyDocument(
        version: 1,
        description: "Fleet default: each device may connect as itself, publish only under its own up/ tree and subscribe to and receive only its own down/ tree and the signed firmware metadata (warden/tuf/). Everything else is denied by default.",
        statements: [
            Statement(
                sid: "device-connect-self", effect: .allow, principals: ["device:*"], actions: ["mqtt:connect"],
                resources: ["client:${device.id}"]),
            Statement(
                sid: "device-publish-own-up", effect: .allow, principals: ["device:*"], actions: ["mqtt:publish"],
                resources: ["topic:d/${device.id}/up/#"]),
            Statement(
                sid: "device-receive-own-down", effect: .allow, principals: ["device:*"],
                actions: ["mqtt:subscribe", "mqtt:receive"], resources: ["topic:d/${device.id}/down/#"]),
            Statement(
                sid: "device-read-firmware-metadata", effect: .allow, principals: ["device:*"],
                actions: ["mqtt:subscribe", "mqtt:receive"], resources: ["topic:warden/tuf/#"]),
        ])

    /// The documents in force for a Warden home: every `*.json` in `$WARDEN_HOME/policies/`, in name order, or the
    /// built-in default when that directory has none.
    public static func load(home: String) throws -> [PolicyDocument] {
        let directory = home + "/policies"
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(".json") }.sorted()
        guard !names.isEmpty else { return [builtInDefault] }
        return try names.map { name in
            let path = directory + "/" + name
            return try parse(try SecureFile.read(path, limit: maximumSize, what: "policy file"), source: path)
        }
    }
}

/// The policy documents in force and where they came from.
///
/// Precedence (one rule for the broker config, `warden serve` and `policy explain`): the active stored version
/// (`warden policy apply`) if any, else every `*.json` in `$WARDEN_HOME/policies/`, else the built-in default.
public struct PolicySet: Sendable {
    /// Where the documents came from.
    public enum Origin: Sendable, Equatable, CustomStringConvertible {
        /// Stored version `version` (digest `digest`).
        case stored(version: Int, digest: String)
        /// The home's `policies/` directory.
        case directory(String)
        /// The built-in fleet default.
        case builtIn

        public var description: String {
            switch self {
            case .stored(let version, let digest): return "policy version \(version) (\(digest.prefix(12)))"
            case .directory(let path): return path
            case .builtIn: return "built-in default"
            }
        }
    }

    /// The documents, in order.
    public var documents: [PolicyDocument]
    /// How each document is named in explanations and errors.
    public var sources: [String]
    /// Where they came from.
    public var origin: Origin

    /// Creates a set.
    public init(documents: [PolicyDocument], sources: [String], origin: Origin) {
        self.documents = documents
        self.sources = sources
        self.origin = origin
    }

    /// The number of statements in all documents.
    public var statementCount: Int { documents.reduce(0) { $0 + $1.statements.count } }

    /// One stored version's documents: names and exact bytes.
    public struct Stored: Sendable {
        /// The version number.
        public var version: Int
        /// Its digest.
        public var digest: String
        /// Its documents (file name, bytes).
        public var files: [(name: String, bytes: [UInt8])]

        /// Creates a stored version.
        public init(version: Int, digest: String, files: [(name: String, bytes: [UInt8])]) {
            self.version = version
            self.digest = digest
            self.files = files
        }
    }

    /// The set in force for `home`: `stored` when given, else `$WARDEN_HOME/policies/*.json`, else the built-in
    /// default. Stored documents are parsed again (and so re-validated) with the same checks as `policy check`.
    public static func inForce(home: String, stored: Stored?) throws -> PolicySet {
        if let stored {
            let sources = stored.files.map { "policy v\(stored.version)/\($0.name)" }
            let documents = try zip(stored.files, sources).map { try PolicyDocument.parse($0.0.bytes, source: $0.1) }
            return PolicySet(documents: documents, sources: sources, origin: .stored(version: stored.version, digest: stored.digest))
        }
        let directory = home + "/policies"
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(".json") }.sorted()
        guard !names.isEmpty else {
            return PolicySet(documents: [PolicyDocument.builtInDefault], sources: ["built-in default"], origin: .builtIn)
        }
        let documents = try PolicyDocument.load(home: home)
        return PolicySet(documents: documents, sources: names.map { directory + "/" + $0 }, origin: .directory(directory))
    }
}
