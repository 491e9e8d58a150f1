import ArgumentParser
import Foundation
import WardenBroker
import WardenCore
import WardenPolicy
import WardenStore

extension WardenRoot {
    /// `warden policy …`
    struct Policy: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "policy",
            abstract: "Explain, check, diff, apply and roll back policy documents.",
            subcommands: [Check.self, Explain.self, Diff.self, Apply.self, History.self, Rollback.self])
    }
}

extension WardenRoot.Policy {
    /// Documents at `path`, or the home's documents in force.
    static func documents(path: String?, global: GlobalOptions) throws -> (documents: [PolicyDocument], sources: [String]) {
        if let path {
            let loaded = try PolicyDocument.load(path: path)
            return (loaded.map(\.document), loaded.map(\.source))
        }
        // What the broker and the HTTP API enforce: the documents in force plus the operator roles.
        let set = try PolicyRelease.inForce(home: global.wardenHome.path, registryPath: global.wardenHome.registryPath)
        return (set.documents + [OperatorRoles.document], set.sources + [OperatorRoles.source])
    }

    /// `warden policy explain`
    struct Explain: WardenCommand {
        static let configuration = CommandConfiguration(
            commandName: "explain",
            abstract: "Decide one request and show the statement(s) that decided it.")

        @OptionGroup var global: GlobalOptions
        @Option(help: "Who asks: device:<id> or role:<name>.") var principal: String
        @Option(help: "A group the device belongs to (repeatable).") var group: [String] = []
        @Option(help: "The action, e.g. mqtt:subscribe or api:device.enroll.") var action: String
        @Option(help: "The resource: client:<id> (mqtt:connect), topic:<topic or filter>, device:<id|*>, firmware:<name|*>.") var resource: String
        @Option(help: "A policy file or directory (default: the home's policies).") var policy: String?
        @Flag(help: "Machine-readable output.") var json = false

        struct Output: Encodable {
            var decision: String
            var reason: String
            var statements: [String]
            var principal: String
            var groups: [String]
            var action: String
            var resource: String
            var detail: String
        }

        func execute() async throws {
            let who = try PolicyPrincipal.parse(principal, groups: group)
            guard action.hasPrefix("mqtt:") || action.hasPrefix("api:") else {
                throw WardenError.badInput("action '\(action)' must be mqtt:<verb> or api:<verb>")
            }
            let (documents, sources) = try WardenRoot.Policy.documents(path: policy, global: global)
            let decision = try PolicyEvaluator(documents: documents, sources: sources).decide(
                principal: who, action: action, resource: resource)
            if json {
                Console.out(
                    try Console.json(
                        Output(
                            decision: decision.effect.rawValue, reason: decision.reason.rawValue,
                            statements: decision.decidingStatements, principal: principal, groups: group, action: action,
                            resource: resource, detail: decision.detail)))
                return
            }
            let statements = decision.decidingStatements.isEmpty ? "" : " " + decision.decidingStatements.joined(separator: ", ")
            Console.out("\(decision.effect.rawValue.uppercased()) (\(decision.reason.rawValue)\(statements))")
            Console.out(decision.detail)
        }
    }

    /// `warden policy check`
    struct Check: WardenCommand {
        static let configuration = CommandConfiguration(
            commandName: "check",
            abstract: "Validate policy documents and warn on risky grants.",
            discussion: "Exit 2 on a syntax or semantic error (naming file and statement); warnings exit 0, or 1 with --strict.")

        @OptionGroup var global: GlobalOptions
        @Argument(help: "A policy file or directory.") var path: String
        @Flag(help: "Exit 1 when there are warnings.") var strict = false
        @Flag(help: "Machine-readable output.") var json = false

        struct Output: Encodable {
            var valid: Bool
            var documents: [String]
            var warnings: [PolicyFinding]
        }

        func execute() async throws {
            let loaded = try PolicyDocument.load(path: path)
            let findings = PolicyLint.check(loaded.map(\.document), sources: loaded.map(\.source))
            if json {
                Console.out(try Console.json(Output(valid: true, documents: loaded.map(\.source), warnings: findings)))
            } else {
                for finding in findings {
                    Console.out("warning: \(finding.source) statement '\(finding.sid)' [\(finding.kind)]: \(finding.message)")
                }
                Console.out("\(loaded.count) document(s) valid, \(findings.count) warning(s)")
            }
            if strict && !findings.isEmpty {
                throw WardenError.policy("\(findings.count) policy warning(s) with --strict")
            }
        }
    }

    /// `warden policy diff`
    struct Diff: WardenCommand {
        static let configuration = CommandConfiguration(
            commandName: "diff",
            abstract: "Which principals gain or lose which permissions between two policy sets (exact, by filter algebra).",
            discussion: """
                Devices named for group and device principals come from --devices FILE (JSON [{"id":…,"groups":[…]}] or \
                lines 'id group1,group2'), else from the home's registry when there is one.
                """)

        @OptionGroup var global: GlobalOptions
        @Argument(help: "The old policy file or directory.") var old: String
        @Argument(help: "The new policy file or directory.") var new: String
        @Option(help: "Devices and their groups, to name the devices affected.") var devices: String?
        @Flag(help: "Machine-readable output.") var json = false

        struct Device: Codable {
            var id: String
            var groups: [String]
        }

        struct Entry: Encodable {
            var change: String
            var principal: String
            var action: String
            var resource: String
            var how: String
            var devices: [String]?
        }

        struct Output: Encodable {
            var changes: [Entry]
        }

        func fleet() throws -> [Device]? {
            if let devices {
                let text = try SecureFile.readText(devices, what: "device list")
                if text.trimmingCharacters(in: .whitespacesAndNewlines).hasPrefix("[") {
                    do {
                        return try JSONDecoder().decode([Device].self, from: Data(text.utf8))
                    } catch {
                        throw WardenError.badInput("device list '\(devices)' is not a JSON array of {id, groups}")
                    }
                }
                return text.split(whereSeparator: \.isNewline).compactMap { line in
                    let parts = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
                    guard let id = parts.first, !id.hasPrefix("#") else { return nil }
                    return Device(id: id, groups: parts.dropFirst().flatMap { $0.split(separator: ",").map(String.init) })
                }
            }
            guard SecureFile.mode(of: global.wardenHome.registryPath) != nil else { return nil }
            return try global.registry().devices(status: .active).map { Device(id: $0.id, groups: $0.groups) }
        }

        func execute() async throws {
            let before = try PolicyDocument.load(path: old).map(\.document)
            let after = try PolicyDocument.load(path: new).map(\.document)
            let changes = PolicyDiff.diff(old: before, new: after)
            let fleet = try fleet()
            let entries = changes.map { change in
                let affected = fleet.map { devices in
                    PolicyDiff.affected(principal: change.principal, fleet: devices.map { ($0.id, $0.groups) })
                }
                return Entry(
                    change: change.change, principal: change.principal, action: change.action, resource: change.resource,
                    how: change.how, devices: affected)
            }
            if json {
                Console.out(try Console.json(Output(changes: entries)))
                return
            }
            if entries.isEmpty { Console.out("no permission changes") }
            for entry in entries {
                let (sign, verb) = entry.change == "gain" ? ("+", "gains") : ("-", "loses")
                var line = "\(sign) \(entry.principal) \(verb) \(entry.action) on \(entry.resource) (\(entry.how))"
                if let devices = entry.devices {
                    line += devices.isEmpty ? "; no known devices" : "; devices: \(devices.joined(separator: ", "))"
                }
                Console.out(line)
            }
        }
    }
}
