import ArgumentParser
import Foundation
import WardenAuthority
import WardenCore
import WardenStore

extension WardenRoot {
    /// `warden rollout …`
    struct Rollout: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rollout",
            abstract: "Staged firmware rollouts: per-device assignments released in waves, auto-abort above a failure rate.",
            subcommands: [Create.self, Status.self, Pause.self, Resume.self, Abort.self])
    }
}

extension WardenRoot.Rollout {
    /// `warden rollout create`
    struct Create: WardenCommand {
        static let configuration = CommandConfiguration(commandName: "create", abstract: "Roll a published target out to a device group.")

        @OptionGroup var global: GlobalOptions
        @Option(help: "The target, NAME@VERSION, as 'warden firmware list' shows it.") var target: String
        @Option(help: "The device group.") var group: String
        @Option(help: "Cumulative percentages of the group per wave, ending at 100.") var waves: String = "1,10,100"
        @Option(help: "Abort when more than this share of final reports are failures.") var abortFailureRate: String = "5%"
        @Flag(help: "Machine-readable output.") var json = false

        func execute() async throws {
            let parts = target.split(separator: "@", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw WardenError.badInput("target '\(target)' must be NAME@VERSION")
            }
            let waves = try Authority.parseWaves(self.waves)
            let rate = try Authority.parseFailureRate(abortFailureRate)
            let authority = try global.authority()
            let rollout = try authority.createRollout(
                targetName: parts[0], targetVersion: parts[1], group: group, waves: waves, abortFailureRate: rate, now: Date())
            let status = try authority.rolloutStatus(rollout.id)
            if json {
                Console.out(try Console.json(status))
            } else {
                Console.out("rollout \(rollout.id): \(parts[0])@\(parts[1]) to group \(group), \(status.counts.values.reduce(0, +)) devices, waves \(self.waves), wave 1 assigned to \(status.counts["pending"] ?? 0)")
            }
        }
    }

    /// `warden rollout status`
    struct Status: WardenCommand {
        static let configuration = CommandConfiguration(commandName: "status", abstract: "Per-state device counts and failure reasons of a rollout.")

        @OptionGroup var global: GlobalOptions
        @Argument(help: "The rollout id.") var id: Int64
        @Flag(help: "Machine-readable output.") var json = false

        func execute() async throws {
            let status = try global.authority().rolloutStatus(id)
            if json {
                Console.out(try Console.json(status))
                return
            }
            let r = status.rollout
            Console.out("rollout \(r.id): \(r.targetName)@\(r.targetVersion) to group \(r.group) — \(r.state.rawValue), wave \(r.currentWave + 1) of \(r.waves.count)\(r.reason.map { " (\($0))" } ?? "")")
            for state in RolloutDeviceState.allCases {
                Console.out("  \(state.rawValue): \(status.counts[state.rawValue] ?? 0)")
            }
            for (reason, count) in status.failureReasons.sorted(by: { $0.key < $1.key }) {
                Console.out("  failed, \(reason): \(count)")
            }
        }
    }

    /// `warden rollout pause`
    struct Pause: WardenCommand {
        static let configuration = CommandConfiguration(commandName: "pause", abstract: "Stop releasing waves.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The rollout id.") var id: Int64

        func execute() async throws {
            let rollout = try global.authority().pauseRollout(id, now: Date())
            Console.out("rollout \(rollout.id) \(rollout.state.rawValue)")
        }
    }

    /// `warden rollout resume`
    struct Resume: WardenCommand {
        static let configuration = CommandConfiguration(commandName: "resume", abstract: "Release waves again.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The rollout id.") var id: Int64

        func execute() async throws {
            let rollout = try global.authority().resumeRollout(id, now: Date())
            Console.out("rollout \(rollout.id) \(rollout.state.rawValue)")
        }
    }

    /// `warden rollout abort`
    struct Abort: WardenCommand {
        static let configuration = CommandConfiguration(commandName: "abort", abstract: "Stop the rollout for good; unfinished devices are cancelled.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The rollout id.") var id: Int64
        @Option(help: "Why, for the audit log.") var reason: String = "aborted by operator"

        func execute() async throws {
            let rollout = try global.authority().abortRollout(id, reason: reason, now: Date())
            Console.out("rollout \(rollout.id) \(rollout.state.rawValue)")
        }
    }
}
