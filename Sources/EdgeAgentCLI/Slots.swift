import ArgumentParser
import EdgeAgent
import Foundation
import WardenCore

extension WardenAgent {
    /// `warden-agent slots --state DIR [--json]`: the A/B firmware slots; the hidden `slots install` installs one.
    struct Slots: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show the A/B firmware slots, the boot state and the install floors.",
            discussion: """
                Reads DIR/slots (layout and crash safety: docs/AGENT.md). Images are not hashed here; the agent \
                re-verifies them at start. Exit codes: 0 ok, 1 refused, 2 bad input, 3 storage.
                """,
            subcommands: [Show.self, Install.self],
            defaultSubcommand: Show.self
        )
    }
}

extension WardenAgent.Slots {
    /// `warden-agent slots [show] --state DIR [--json]`.
    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the slots, boot state and floors (the default).")

        @Option(name: .long, help: "The agent's state directory (the slots are in DIR/slots).")
        var state: String

        @Flag(name: .long, help: "Print one JSON object instead of text.")
        var json = false

        func run() throws {
            let status: SlotStatus
            do {
                status = try SlotStore(stateDirectory: state).status()
            } catch let error as WardenError {
                throw reportSlots(error)
            }
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
                let data = (try? encoder.encode(status)) ?? Data("{}".utf8)
                _ = FileOutput.standardOutput.write(String(decoding: data, as: UTF8.self) + "\n")
                return
            }
            var lines = ["active: \(status.active?.rawValue ?? "none")", "trial: \(status.trial?.rawValue ?? "none")"]
            for slot in Slot.allCases {
                let role = slot == status.active ? " (active)" : slot == status.trial ? " (trial)" : ""
                if let manifest = status.manifest(of: slot) {
                    lines.append(
                        "slot \(slot)\(role): \(manifest.name)@\(manifest.version) release \(manifest.releaseCounter), "
                            + "\(manifest.length) bytes, sha256 \(manifest.sha256), hardware \(manifest.hardware.joined(separator: ","))"
                            + (manifest.rollout.map { ", rollout \($0)" } ?? ""))
                } else {
                    lines.append("slot \(slot)\(role): empty")
                }
            }
            for (name, floor) in status.floors.sorted(by: { $0.key < $1.key }) {
                lines.append("floor \(name): \(floor.version) release \(floor.releaseCounter)")
            }
            if let rollback = status.lastRollback {
                let what = rollback.manifest.map { "\($0.name)@\($0.version)" } ?? "slot \(rollback.slot)"
                lines.append("last rollback: \(what) at \(Int64(rollback.at.timeIntervalSince1970)): \(rollback.reason.split(whereSeparator: \.isNewline).first ?? "")")
            }
            _ = FileOutput.standardOutput.write(lines.joined(separator: "\n") + "\n")
        }
    }

    /// `warden-agent slots install --state DIR --image F --manifest M [--commit]` (hidden): installs into the inactive
    /// slot as a trial; with --commit, commits it without a health check.
    struct Install: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Install an image into the inactive slot (manual installs and tests).",
            discussion: """
                Runs the store's recovery first, then checks the image against the manifest (length, SHA-256) and the \
                floor, and installs it as the trial. With --commit the trial is committed at once, without a health check.
                """,
            shouldDisplay: false
        )

        @Option(name: .long, help: "The agent's state directory (the slots are in DIR/slots).")
        var state: String

        @Option(name: .long, help: "The firmware image.")
        var image: String

        @Option(name: .long, help: "The slot manifest (JSON, snake_case keys, at most 64 KiB).")
        var manifest: String

        @Flag(name: .long, help: "Commit the install (make it active, raise the floor) without a health check.")
        var commit = false

        func run() throws {
            let store = SlotStore(stateDirectory: state)
            do {
                let bytes = try SecureFile.read(manifest, limit: SlotManifest.maximumBytes, what: "manifest")
                let parsed = try SlotManifest.decode(bytes, source: manifest)
                // A pending trial from an interrupted run is replaced by this install; recovery cleans the rest.
                _ = try store.recover()
                let slot = try store.install(image: image, manifest: parsed)
                if commit { try store.commit() }
                _ = FileOutput.standardOutput.write(
                    "installed \(parsed.name)@\(parsed.version) (release \(parsed.releaseCounter)) into slot \(slot)"
                        + (commit ? ", committed (active)\n" : " as the trial; run the health check, then commit or roll back\n"))
            } catch let error as WardenError {
                throw reportSlots(error)
            }
        }
    }
}

/// Prints a one-line error and maps it to the slot commands' exit codes: 1 refused (policy, existing), 2 bad input
/// (malformed, missing), 3 storage (I/O, corrupted state, lock held).
func reportSlots(_ error: WardenError) -> ExitCode {
    var stderr = StandardError()
    print("warden-agent: error: \(error.message)", to: &stderr)
    switch error.code {
    case .policyViolation, .alreadyExists, .signatureInvalid, .verificationFailed: return ExitCode(1)
    case .badInput, .notFound: return ExitCode(2)
    default: return ExitCode(3)
    }
}
