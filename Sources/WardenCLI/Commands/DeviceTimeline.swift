import ArgumentParser
import Foundation
import WardenBroker
import WardenCore
import WardenStore

extension WardenRoot.Device {
    /// `warden device timeline ID [--since 3h] [--until T] [--limit N] [--timeout 5] [--json]`
    struct Timeline: WardenCommand {
        static let configuration = CommandConfiguration(
            commandName: "timeline",
            abstract: "Merge a device's flight recorder with the authority's own events about it, in time order.",
            discussion: """
                Asks the device over the broker (identity warden-recorder) for its flight-recorder entries in the time \
                range, and merges them with the authority's events for the device: the audit log (enroll, revoke, \
                config, rollouts…) and its presence. One line per event: time, source (device|authority), kind, \
                subsystem, message. If the device does not answer within --timeout (offline, or the broker is down), \
                the authority's events are printed alone, a note on stderr says the device was unreachable, and the \
                exit status is still 0. Device times are the device's clock.
                """)

        @OptionGroup var global: GlobalOptions
        @Argument(help: "Device id.") var id: String
        @Option(help: "Start of the range: a duration ago (3h, 2d) or an ISO 8601 time (default 24h).") var since: String = "24h"
        @Option(help: "End of the range: a duration ago or an ISO 8601 time (default now).") var until: String?
        @Option(help: "Most device entries to fetch (the newest in the range), 1–10000.") var limit: Int = 1000
        @Option(help: "Seconds to wait for the device's answer.") var timeout: Double = 5
        @Flag(help: "Machine-readable output.") var json = false

        func validate() throws {
            guard (1...10_000).contains(limit) else { throw ValidationError("--limit must be between 1 and 10000") }
            guard timeout.isFinite, timeout > 0, timeout <= 300 else { throw ValidationError("--timeout must be between 0 and 300 seconds") }
        }

        /// One line of the timeline.
        struct Event: Encodable, Equatable {
            let time: Date
            let source: String
            let kind: String
            let subsystem: String
            let message: String

            enum CodingKeys: String, CodingKey {
                case time, unixMilliseconds = "unix_ms", source, kind, subsystem, message
            }

            func encode(to encoder: any Encoder) throws {
                var container = encoder.container(keyedBy: CodingKeys.self)
                try container.encode(time, forKey: .time)
                try container.encode(Timeline.milliseconds(time), forKey: .unixMilliseconds)
                try container.encode(source, forKey: .source)
                try container.encode(kind, forKey: .kind)
                try container.encode(subsystem, forKey: .subsystem)
                try container.encode(message, forKey: .message)
            }
        }

        /// The `--json` document.
        struct Output: Encodable {
            let device: String
            let since: Date
            let until: Date
            let reachable: Bool
            let complete: Bool
            let truncated: Bool
            let note: String?
            let events: [Event]
        }

        func execute() async throws {
            let deviceID = try DeviceID(id)
            let now = Date()
            let start = try Self.time(since, now: now, option: "--since")
            let end = try until.map { try Self.time($0, now: now, option: "--until") } ?? now
            guard start <= end else { throw WardenError.badInput("--since \(since) is after --until \(until ?? "now")") }
            let registry = try global.registry()
            guard try registry.device(deviceID.rawValue) != nil else {
                throw WardenError.notFound("device '\(deviceID)' is not enrolled")
            }
            var events = try Self.authorityEvents(registry: registry, device: deviceID.rawValue, from: start, to: end)

            var note: String?
            var answer: RecorderQuery.Answer?
            do {
                guard let layout = BrokerMetadata.registered(home: global.wardenHome.path) else {
                    throw WardenError.notFound("no broker setup is registered ('warden broker config')")
                }
                let configuration = try RecorderQuery.identity(layout: layout, authority: { try global.authority() }, now: now)
                answer = try await RecorderQuery(configuration: configuration, lockPath: layout.recorderLock).run(
                    device: deviceID, since: Self.milliseconds(start), until: Self.milliseconds(end), limit: limit,
                    timeout: .milliseconds(Int64(timeout * 1000)))
                if answer == nil { note = "device \(deviceID) did not answer within \(Self.seconds(timeout)) s (offline or unreachable); showing the authority's events only" }
            } catch let error as WardenError {
                note = "device \(deviceID) unreachable: \(error.message); showing the authority's events only"
            }
            if let answer {
                if let refusal = answer.error { note = "device \(deviceID) refused the query: \(refusal)" }
                if !answer.complete { note = "device \(deviceID) answered only in part before the timeout" }
                events += answer.entries.map {
                    Event(time: Date(timeIntervalSince1970: Double($0.t) / 1000), source: "device", kind: $0.kind, subsystem: $0.subsystem, message: $0.message)
                }
                if answer.truncated, note == nil {
                    note = "device \(deviceID) had \(answer.matched) entries in the range; showing the newest \(answer.entries.count) (--limit)"
                }
            }
            // Stable: equal times keep authority events first and the device's own order.
            events = events.enumerated().sorted { ($0.element.time, $0.offset) < ($1.element.time, $1.offset) }.map(\.element)
            if json {
                Console.out(try Console.json(Output(
                    device: deviceID.rawValue, since: start, until: end, reachable: answer != nil, complete: answer?.complete ?? false,
                    truncated: answer?.truncated ?? false, note: note, events: events)))
            } else {
                for event in events {
                    Console.out("\(Self.stamp(event.time))  \(Self.pad(event.source, 9)) \(Self.pad(event.kind, 16)) \(event.subsystem): \(Self.oneLine(event.message))")
                }
            }
            if let note { Console.error("warden: \(note)") }
        }

        /// The authority's events about `device` in `from…to`: its audit events and its presence.
        static func authorityEvents(registry: Registry, device: String, from: Date, to: Date) throws -> [Event] {
            let parser = ISO8601DateFormatter()
            parser.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            var events: [Event] = []
            for audit in try registry.auditEvents(deviceID: device, since: from) {
                guard let time = parser.date(from: audit.timestamp), time <= to else { continue }
                events.append(Event(time: time, source: "authority", kind: audit.action, subsystem: "audit", message: "\(audit.actor) \(audit.details)"))
            }
            // Fleet-wide steps of the rollouts the device takes part in (waves, pauses, aborts…).
            let rollouts = Set(try registry.rollouts().filter { rollout in
                try registry.rolloutDevices(rollout.id).contains { $0.deviceID == device }
            }.map { String($0.id) })
            if !rollouts.isEmpty {
                for audit in try registry.auditEvents(since: from) where audit.deviceID == nil && audit.action.hasPrefix("rollout.") {
                    guard let time = parser.date(from: audit.timestamp), time <= to,
                        let details = try? JSONSerialization.jsonObject(with: Data(audit.details.utf8)) as? [String: Any],
                        let rollout = details["rollout"] as? String, rollouts.contains(rollout)
                    else { continue }
                    events.append(Event(time: time, source: "authority", kind: audit.action, subsystem: "audit", message: "\(audit.actor) \(audit.details)"))
                }
            }
            if let presence = try registry.presence(of: device) {
                if presence.changedAt >= from, presence.changedAt <= to {
                    events.append(Event(
                        time: presence.changedAt, source: "authority", kind: presence.connected ? "presence.online" : "presence.offline",
                        subsystem: "presence", message: presence.connected ? "connected (session \(presence.session))" : "not connected (session \(presence.session))"))
                }
                if presence.lastSeen > presence.changedAt, presence.lastSeen >= from, presence.lastSeen <= to {
                    events.append(Event(time: presence.lastSeen, source: "authority", kind: "presence.seen", subsystem: "presence", message: "last presence message"))
                }
            }
            return events.sorted { $0.time < $1.time }
        }

        /// `text` as a duration ago (`3h`) or an ISO 8601 time.
        static func time(_ text: String, now: Date, option: String) throws -> Date {
            if let duration = try? WardenDuration(parsing: text) { return now.addingTimeInterval(-duration.timeInterval) }
            let parser = ISO8601DateFormatter()
            if let date = parser.date(from: text) { return date }
            parser.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            if let date = parser.date(from: text) { return date }
            throw WardenError.badInput("\(option) '\(text)' is neither a duration (3h, 2d) nor an ISO 8601 time")
        }

        /// `text` padded with spaces to `width` (never cut).
        static func pad(_ text: String, _ width: Int) -> String {
            text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
        }

        static func milliseconds(_ date: Date) -> Int64 { Int64((date.timeIntervalSince1970 * 1000).rounded(.down)) }

        static func seconds(_ value: Double) -> String { value == value.rounded() ? String(Int(value)) : String(value) }

        /// ISO 8601 UTC with milliseconds.
        static func stamp(_ date: Date) -> String {
            let formatter = ISO8601DateFormatter()
            formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            formatter.timeZone = TimeZone(identifier: "UTC")
            return formatter.string(from: date)
        }

        /// A device message on one line (control characters shown as spaces), so a hostile message cannot forge lines.
        static func oneLine(_ text: String) -> String {
            String(String.UnicodeScalarView(text.unicodeScalars.map { $0.properties.generalCategory == .control ? " " : $0 }))
        }
    }
}
