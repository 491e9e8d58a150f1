import Foundation
import WardenCore
import WardenPolicy
import WardenStore

/// Numbered policy versions: which documents are in force, `policy apply` and `policy rollback`.
///
/// The registry stores each version's documents (bytes + SHA-256) with an audit event in one transaction; the
/// newest version is in force. Propagation to the broker is separate (``BrokerPush/afterPolicyChange``, and
/// `warden serve` polls the version number).
public enum PolicyRelease {
    /// The documents in force for `home`: the active stored version if any, else `$WARDEN_HOME/policies/*.json`, else
    /// the built-in default.
    public static func inForce(home: String, registry: Registry) throws -> PolicySet {
        guard let active = try registry.activePolicyVersion() else { return try PolicySet.inForce(home: home, stored: nil) }
        let files = try registry.policyDocuments(version: active.version).map { (name: $0.name, bytes: $0.bytes) }
        return try PolicySet.inForce(home: home, stored: PolicySet.Stored(version: active.version, digest: active.digest, files: files))
    }

    /// The documents in force for `home`, opening its registry when there is one (read-only use: never creates it).
    public static func inForce(home: String, registryPath: String) throws -> PolicySet {
        guard SecureFile.mode(of: registryPath) != nil else { return try PolicySet.inForce(home: home, stored: nil) }
        return try inForce(home: home, registry: try Registry(path: registryPath))
    }

    /// What an apply or a rollback did.
    public struct Result: Sendable {
        /// Stored, or unchanged (identical to the active version).
        public var outcome: Registry.PolicyStoreOutcome
        /// The set in force before.
        public var previous: PolicySet
        /// The documents now in force (equal to `previous` when unchanged).
        public var current: [PolicyDocument]
        /// Permission changes from `previous` to `current`.
        public var changes: [PermissionChange]
        /// Lint warnings about the new documents (the same as `policy check`).
        public var findings: [PolicyFinding]
    }

    /// Reads and validates the documents at `path` (a file, or a directory of `*.json`), exactly as `policy check`
    /// does, and returns them with their bytes.
    /// - Throws: `.badInput` naming the file and statement at fault.
    public static func read(path: String) throws -> [(name: String, source: String, bytes: [UInt8], document: PolicyDocument)] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw WardenError.badInput("no policy file or directory '\(path)'")
        }
        let files: [String]
        if isDirectory.boolValue {
            let names = ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).filter { $0.hasSuffix(".json") }.sorted()
            guard !names.isEmpty else { throw WardenError.badInput("policy directory '\(path)' has no *.json documents") }
            files = names.map { path + "/" + $0 }
        } else {
            files = [path]
        }
        return try files.map { file in
            let bytes = try SecureFile.read(file, limit: PolicyDocument.maximumSize, what: "policy file")
            let name = (file as NSString).lastPathComponent
            guard (1...255).contains(name.utf8.count) else { throw WardenError.badInput("policy file name '\(name.prefix(80))' is too long") }
            return (name, file, bytes, try PolicyDocument.parse(bytes, source: file))
        }
    }

    /// `warden policy apply PATH`: validates every document (nothing is stored on any error), then stores them as the
    /// next version with an audit event naming the version, digest and permission changes, unless they are identical
    /// to the active version.
    public static func apply(path: String, home: String, registry: Registry, actor: String, now: Date) throws -> Result {
        let files = try read(path: path)
        let documents = files.map(\.document)
        return try store(
            files.map { StoredPolicyDocument(name: $0.name, bytes: $0.bytes) }, documents: documents,
            sources: files.map(\.source), origin: "apply \(path)", action: "policy.apply", home: home, registry: registry,
            actor: actor, now: now)
    }

    /// `warden policy rollback N`: stores version `version`'s documents again as a new version (audited).
    /// - Throws: `.notFound` if there is no such version.
    public static func rollback(to version: Int, home: String, registry: Registry, actor: String, now: Date) throws -> Result {
        let stored = try registry.policyDocuments(version: version)
        let sources = stored.map { "policy v\(version)/\($0.name)" }
        let documents = try zip(stored, sources).map { try PolicyDocument.parse($0.0.bytes, source: $0.1) }
        return try store(
            stored, documents: documents, sources: sources, origin: "rollback to \(version)", action: "policy.rollback",
            home: home, registry: registry, actor: actor, now: now, extra: ["rollback_to": String(version)])
    }

    static func store(
        _ stored: [StoredPolicyDocument], documents: [PolicyDocument], sources: [String], origin: String, action: String,
        home: String, registry: Registry, actor: String, now: Date, extra: [String: String] = [:]
    ) throws -> Result {
        // A previous version this build can no longer read must not block the fix: diff against nothing then.
        let previous: PolicySet
        var unreadable: String?
        do {
            previous = try inForce(home: home, registry: registry)
        } catch let error as WardenError where error.code == .badInput {
            previous = PolicySet(documents: [], sources: [], origin: .builtIn)
            unreadable = error.message
        }
        let changes = PolicyDiff.diff(old: previous.documents, new: documents)
        let findings = PolicyLint.check(documents, sources: sources)
        var details = extra
        details["gains"] = String(changes.filter { $0.change == "gain" }.count)
        details["losses"] = String(changes.filter { $0.change == "loss" }.count)
        details["changes"] = summary(changes)
        details["previous"] = unreadable.map { "unreadable (\($0))" } ?? previous.origin.description
        let outcome = try registry.storePolicyVersion(
            stored, statements: documents.reduce(0) { $0 + $1.statements.count }, origin: origin, action: action,
            details: details, actor: actor, now: now)
        if case .unchanged = outcome {
            return Result(outcome: outcome, previous: previous, current: previous.documents, changes: [], findings: findings)
        }
        return Result(outcome: outcome, previous: previous, current: documents, changes: changes, findings: findings)
    }

    /// One line per change (at most 50, then a count), for the audit event.
    public static func summary(_ changes: [PermissionChange]) -> String {
        let lines = changes.prefix(50).map { line(for: $0) }
        let more = changes.count > 50 ? ["… and \(changes.count - 50) more"] : []
        return (lines + more).joined(separator: "; ")
    }

    /// `+ device:* gains mqtt:publish on topic:… (allowed)`.
    public static func line(for change: PermissionChange) -> String {
        "\(change.change == "gain" ? "+ \(change.principal) gains" : "- \(change.principal) loses") \(change.action) on \(change.resource) (\(change.how))"
    }
}
