import ArgumentParser
import Foundation
import WardenCore
import WardenStore

extension WardenRoot {
    /// `warden audit …`
    struct Audit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "audit",
            abstract: "Read and verify the hash-chained audit log.", subcommands: [Log.self, Verify.self])
    }
}

typealias Audit = WardenRoot.Audit

extension WardenRoot.Audit {
    /// `warden audit log`
    struct Log: WardenCommand {
        static let configuration = CommandConfiguration(commandName: "log", abstract: "Show audit events.")

        @OptionGroup var global: GlobalOptions
        @Option(help: "Only events about this device.") var device: String?
        @Option(help: "Only events newer than this, e.g. 3h or 7d.") var since: String?
        @Flag(help: "Machine-readable output.") var json = false

        func execute() async throws {
            let window = try since.map { try WardenDuration(parsing: $0) }
            let registry = try global.registry()
            let events = try registry.auditEvents(
                deviceID: device, since: window.map { Date().addingTimeInterval(-$0.timeInterval) })
            if json {
                Console.out(try Console.json(events))
                return
            }
            for event in events {
                Console.out("#\(event.seq) \(event.timestamp) \(event.actor) \(event.action) \(event.deviceID ?? "-") \(event.details)")
            }
        }
    }

    /// `warden audit verify`
    struct Verify: WardenCommand {
        static let configuration = CommandConfiguration(
            commandName: "verify",
            abstract: "Check the audit hash chain; names the first edited, deleted or reordered event.")

        @OptionGroup var global: GlobalOptions

        func execute() async throws {
            let registry = try global.registry()
            switch try registry.verifyAudit() {
            case .intact(let events, let head):
                Console.out("audit chain intact: \(events) event(s), head \(head)")
            case .broken(let seq, let reason):
                throw WardenError(.auditChainBroken, "audit chain broken at event #\(seq): \(reason)")
            }
        }
    }
}
