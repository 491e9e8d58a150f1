import ArgumentParser
import Foundation
import WardenBroker
import WardenCore
import WardenPolicy
import WardenStore

extension WardenRoot.Policy {
    /// `warden policy apply PATH`
    struct Apply: WardenCommand {
        static let configuration = CommandConfiguration(
            commandName: "apply",
            abstract: "Validate policy documents, store them as the next numbered version and push them to the broker.",
            discussion: """
                PATH is a policy file or a directory of *.json documents. Any syntax or semantic error stops the apply \
                (exit 2, nothing stored). Identical content to the active version stores nothing. The new version is \
                audited with its digest and permission changes; device roles are rewritten in a running broker at once, \
                and 'warden serve' picks the version up within 0.5 s.
                """)

        @OptionGroup var global: GlobalOptions
        @Argument(help: "A policy file or a directory of *.json documents.") var path: String
        @Flag(help: "Machine-readable output.") var json = false

        struct Output: Encodable {
            var stored: Bool
            var version: Int
            var digest: String
            var statements: Int
            var changes: [PermissionChange]
            var warnings: [PolicyFinding]
            var broker: [String]
        }

        func execute() async throws {
            let registry = try global.registry()
            let home = global.wardenHome.path
            let result = try PolicyRelease.apply(path: path, home: home, registry: registry, actor: global.actor, now: Date())
            try await WardenRoot.Policy.report(result, registry: registry, home: home, json: json)
        }
    }

    /// `warden policy rollback N`
    struct Rollback: WardenCommand {
        static let configuration = CommandConfiguration(
            commandName: "rollback",
            abstract: "Make version N active again, as a new version (audited, pushed to the broker).")

        @OptionGroup var global: GlobalOptions
        @Argument(help: "The version to return to (see 'warden policy history').") var version: Int
        @Flag(help: "Machine-readable output.") var json = false

        func validate() throws {
            guard version >= 1 else { throw ValidationError("the version must be 1 or more") }
        }

        func execute() async throws {
            let registry = try global.registry()
            let home = global.wardenHome.path
            let result = try PolicyRelease.rollback(to: version, home: home, registry: registry, actor: global.actor, now: Date())
            try await WardenRoot.Policy.report(result, registry: registry, home: home, json: json)
        }
    }

    /// Prints what an apply or rollback did and pushes a change to the broker.
    static func report(_ result: PolicyRelease.Result, registry: Registry, home: String, json: Bool) async throws {
        var notes: [String] = []
        let version: PolicyVersion
        let stored: Bool
        switch result.outcome {
        case .unchanged(let active):
            version = active
            stored = false
        case .stored(let new):
            version = new
            stored = true
            notes = await BrokerPush.afterPolicyChange(
                home: home, registry: registry, previous: result.previous.documents, current: result.current
            ).notes
        }
        if json {
            Console.out(
                try Console.json(
                    Apply.Output(
                        stored: stored, version: version.version, digest: version.digest, statements: version.statements,
                        changes: result.changes, warnings: result.findings, broker: notes)))
            return
        }
        for finding in result.findings {
            Console.out("warning: \(finding.source) statement '\(finding.sid)' [\(finding.kind)]: \(finding.message)")
        }
        guard stored else {
            Console.out("unchanged: identical to the active version \(version.version) (sha256 \(version.digest)); nothing stored")
            return
        }
        Console.out("stored policy version \(version.version) (sha256 \(version.digest), \(version.statements) statement(s))")
        if result.changes.isEmpty { Console.out("no permission changes") }
        for change in result.changes { Console.out(PolicyRelease.line(for: change)) }
        for note in notes { Console.out(note) }
    }

    /// `warden policy history`
    struct History: WardenCommand {
        static let configuration = CommandConfiguration(commandName: "history", abstract: "List the stored policy versions; the newest is active.")

        @OptionGroup var global: GlobalOptions
        @Flag(help: "Machine-readable output.") var json = false

        struct Entry: Encodable {
            var version: Int
            var time: String
            var actor: String
            var origin: String
            var digest: String
            var statements: Int
            var documents: [String]
            var active: Bool
        }

        func execute() async throws {
            let versions = try global.registry().policyVersions()
            let activeNumber = versions.last?.version
            let formatter = ISO8601DateFormatter()
            let entries = versions.map {
                Entry(
                    version: $0.version, time: formatter.string(from: $0.createdAt), actor: $0.actor, origin: $0.origin,
                    digest: $0.digest, statements: $0.statements, documents: $0.documents, active: $0.version == activeNumber)
            }
            if json {
                Console.out(try Console.json(entries))
                return
            }
            if entries.isEmpty {
                let origin = try PolicyRelease.inForce(home: global.wardenHome.path, registry: global.registry()).origin
                Console.out("no stored policy versions; in force: \(origin)")
            }
            for entry in entries {
                Console.out(
                    "\(entry.active ? "*" : " ") \(entry.version)  \(entry.time)  sha256 \(entry.digest.prefix(16))  \(entry.statements) statement(s)  \(entry.origin)  (\(entry.actor))")
            }
        }
    }
}
