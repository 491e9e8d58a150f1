import Foundation
import Synchronization

/// The agent's health board: one entry per subsystem (each ``AgentFeature`` and background service).
///
/// A subsystem that fails is marked degraded with its reason and keeps being retried; the others carry on. The
/// session publishes the board (``report()``) retained on `d/<id>/up/health` whenever it changes, so the authority
/// sees a degraded agent without the agent going down (fault isolation, docs/AGENT.md).
public final class AgentHealth: Sendable {
    /// The state of one subsystem.
    public struct Entry: Codable, Sendable, Equatable {
        /// `ok`, `degraded` or `stopped`.
        public var state: String
        /// Why it is degraded (at most 200 characters), or nil.
        public var reason: String?
        /// Unix seconds of the last state change.
        public var since: Int64
        /// How many times the subsystem failed since the agent started.
        public var failures: Int
    }

    private struct Board {
        var entries: [String: Entry] = [:]
        var generation = 0
    }

    private let board = Mutex(Board())
    private let clock: @Sendable () -> Date

    /// Creates an empty board.
    public init(clock: @escaping @Sendable () -> Date = Date.init) {
        self.clock = clock
    }

    /// Marks `name` healthy (a no-op if it already is).
    public func ok(_ name: String) {
        set(name, state: "ok", reason: nil, failed: false)
    }

    /// Marks `name` degraded because of `reason`, and counts a failure.
    public func degraded(_ name: String, reason: String) {
        set(name, state: "degraded", reason: String(reason.prefix(200)), failed: true)
    }

    /// Marks `name` stopped on purpose (disabled by config), with an optional reason.
    public func stopped(_ name: String, reason: String? = nil) {
        set(name, state: "stopped", reason: reason.map { String($0.prefix(200)) }, failed: false)
    }

    private func set(_ name: String, state: String, reason: String?, failed: Bool) {
        let now = Int64(clock().timeIntervalSince1970)
        board.withLock { board in
            var entry = board.entries[name] ?? Entry(state: "", reason: nil, since: now, failures: 0)
            if failed { entry.failures += 1 }
            if entry.state != state || entry.reason != reason {
                entry.state = state
                entry.reason = reason
                entry.since = now
                board.generation += 1
            }
            board.entries[name] = entry
        }
    }

    /// The entry of `name`, if any.
    public func entry(_ name: String) -> Entry? { board.withLock { $0.entries[name] } }

    /// All entries by name.
    public var entries: [String: Entry] { board.withLock { $0.entries } }

    /// Increases whenever any entry changes state or reason; lets the session publish only changes.
    public var generation: Int { board.withLock { $0.generation } }

    /// The board as JSON: `{"status":"ok"|"degraded","subsystems":{name: entry}}` with sorted keys.
    public func report() -> [UInt8] {
        let entries = self.entries
        struct Report: Encodable {
            let status: String
            let subsystems: [String: Entry]
        }
        let status = entries.values.contains { $0.state == "degraded" } ? "degraded" : "ok"
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        // Encoding strings, integers and a dictionary of them cannot fail.
        return Array((try? encoder.encode(Report(status: status, subsystems: entries))) ?? Data("{}".utf8))
    }
}
