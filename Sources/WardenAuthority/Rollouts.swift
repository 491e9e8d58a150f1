import Foundation
import WardenCore
import WardenStore

/// Staged firmware rollouts, Uptane director style: each device of a group is assigned the target when its wave is
/// released; a wave is released when every device of the previous waves reported a final state, and the rollout
/// aborts by itself when the share of failures among final reports exceeds its threshold. Every step is audited.
public struct RolloutStatus: Codable, Sendable, Equatable {
    /// The rollout.
    public var rollout: RolloutRecord
    /// Devices per state (every state present, zero included).
    public var counts: [String: Int]
    /// Failure reasons and how many devices reported each.
    public var failureReasons: [String: Int]
    /// Failed / (succeeded + failed), in percent, over final reports.
    public var failureRate: Double
}

extension Authority {
    /// Parses `--waves 1,10,100`: cumulative percentages, strictly increasing, 1…100, ending at 100, at most 20.
    public static func parseWaves(_ text: String) throws -> [Int] {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        let waves = parts.compactMap { Int($0) }
        guard waves.count == parts.count, (1...20).contains(waves.count), waves.last == 100,
              zip(waves, waves.dropFirst()).allSatisfy({ $0 < $1 }), waves.allSatisfy({ (1...100).contains($0) })
        else { throw WardenError.badInput("waves '\(text)' must be increasing percentages from 1 to 100 ending at 100, e.g. 1,10,100") }
        return waves
    }

    /// Parses `--abort-failure-rate 5%` (or `5`): 0…100.
    public static func parseFailureRate(_ text: String) throws -> Double {
        let trimmed = text.hasSuffix("%") ? String(text.dropLast()) : text
        guard let value = Double(trimmed), value.isFinite, (0...100).contains(value) else {
            throw WardenError.badInput("abort failure rate '\(text)' must be a percentage from 0 to 100, e.g. 5%")
        }
        return value
    }

    /// Creates a rollout of the published target `name@version` to the active devices of `group`.
    /// - Throws: ``WardenError`` `.notFound` if the target is not in the firmware repository or the group has no
    ///   active device, `.badInput` for bad waves or rate.
    public func createRollout(
        targetName: String, targetVersion: String, group: String, waves: [Int], abortFailureRate: Double, now: Date
    ) throws -> RolloutRecord {
        guard let release = try FirmwareRepository(home: home).list().first(where: { $0.name == targetName && $0.version == targetVersion }) else {
            throw WardenError.notFound("target \(targetName)@\(targetVersion) is not in the firmware repository ('warden firmware list')")
        }
        let members = try registry.devices(status: .active).filter { $0.groups.contains(group) }.map(\.id).sorted()
        guard !members.isEmpty else { throw WardenError.notFound("group '\(group)' has no active device") }
        // Device i (in id order) belongs to the first wave whose cumulative share covers it; wave 0 has at least one.
        let assignments = members.enumerated().map { index, id -> (id: String, wave: Int) in
            let wave = waves.firstIndex { index < max(1, Int((Double($0) * Double(members.count) / 100).rounded(.up))) } ?? waves.count - 1
            return (id, wave)
        }
        return try registry.createRollout(
            targetName: targetName, targetVersion: targetVersion, targetSHA256: release.sha256, group: group, waves: waves,
            abortFailureRate: abortFailureRate, devices: assignments, actor: actor, now: now)
    }

    /// Per-state counts and failure reasons of rollout `id`.
    public func rolloutStatus(_ id: Int64) throws -> RolloutStatus {
        guard let rollout = try registry.rollout(id) else { throw WardenError.notFound("rollout \(id) does not exist") }
        let devices = try registry.rolloutDevices(id)
        var counts = Dictionary(uniqueKeysWithValues: RolloutDeviceState.allCases.map { ($0.rawValue, 0) })
        var reasons: [String: Int] = [:]
        for device in devices {
            counts[device.state.rawValue, default: 0] += 1
            if device.state == .failed { reasons[device.reason ?? "unspecified", default: 0] += 1 }
        }
        return RolloutStatus(rollout: rollout, counts: counts, failureReasons: reasons, failureRate: Self.failureRate(devices))
    }

    /// Pauses a running rollout.
    public func pauseRollout(_ id: Int64, now: Date) throws -> RolloutRecord {
        try registry.modifyRollout(id, actor: actor, now: now) { rollout, _ in
            guard rollout.state == .running else { throw WardenError.policy("rollout \(id) is \(rollout.state.rawValue), not running") }
            rollout.state = .paused
            return [RolloutAuditEvent(action: "rollout.pause", details: [:])]
        }
    }

    /// Resumes a paused rollout (and releases the next wave if the current one is already done).
    public func resumeRollout(_ id: Int64, now: Date) throws -> RolloutRecord {
        try registry.modifyRollout(id, actor: actor, now: now) { rollout, devices in
            guard rollout.state == .paused else { throw WardenError.policy("rollout \(id) is \(rollout.state.rawValue), not paused") }
            rollout.state = .running
            rollout.reason = nil
            return [RolloutAuditEvent(action: "rollout.resume", details: [:])] + Self.advance(&rollout, &devices)
        }
    }

    /// Aborts a rollout: devices not yet finished are cancelled (their assignment withdrawn).
    public func abortRollout(_ id: Int64, reason: String, now: Date) throws -> RolloutRecord {
        try registry.modifyRollout(id, actor: actor, now: now) { rollout, devices in
            guard rollout.state == .running || rollout.state == .paused else {
                throw WardenError.policy("rollout \(id) is already \(rollout.state.rawValue)")
            }
            Self.abort(&rollout, &devices, reason: reason)
            return [RolloutAuditEvent(action: "rollout.abort", details: ["reason": reason])]
        }
    }

    /// Records a device's (already authenticated) status report for its current assignment, then releases the next
    /// wave or aborts above the failure rate.
    /// - Parameter state: `.downloading`, `.succeeded` or `.failed`.
    /// - Throws: `.notFound` if the device has no current assignment, `.badInput` for another state.
    @discardableResult
    public func recordRolloutReport(device: String, state: RolloutDeviceState, reason: String?, now: Date) throws -> RolloutRecord {
        guard [.downloading, .succeeded, .failed].contains(state) else {
            throw WardenError.badInput("a device reports downloading, succeeded or failed, not \(state.rawValue)")
        }
        guard let assignment = try registry.currentAssignment(device: device) else {
            throw WardenError.notFound("device \(device) has no current rollout assignment")
        }
        let trimmedReason = reason.map { String($0.prefix(200)) }
        return try registry.modifyRollout(assignment.rollout.id, actor: "device:\(device)", now: now) { rollout, devices in
            guard let index = devices.firstIndex(where: { $0.deviceID == device }) else { return [] }
            devices[index].state = state
            devices[index].reason = state == .failed ? (trimmedReason ?? "unspecified") : nil
            var events = [RolloutAuditEvent(
                action: "rollout.report", deviceID: device,
                details: ["state": state.rawValue, "reason": devices[index].reason ?? ""].filter { !$0.value.isEmpty })]
            let rate = Self.failureRate(devices)
            if rollout.state == .running || rollout.state == .paused, state == .failed, rate > rollout.abortFailureRate {
                let why = String(format: "failure rate %.1f%% above %.1f%%", rate, rollout.abortFailureRate)
                Self.abort(&rollout, &devices, reason: why)
                events.append(RolloutAuditEvent(action: "rollout.abort", details: ["reason": why, "automatic": "true"]))
            } else if rollout.state == .running {
                events += Self.advance(&rollout, &devices)
            }
            return events
        }
    }

    static func failureRate(_ devices: [RolloutDeviceRecord]) -> Double {
        let failed = devices.filter { $0.state == .failed }.count
        let succeeded = devices.filter { $0.state == .succeeded }.count
        return failed + succeeded == 0 ? 0 : Double(failed) * 100 / Double(failed + succeeded)
    }

    static func abort(_ rollout: inout RolloutRecord, _ devices: inout [RolloutDeviceRecord], reason: String) {
        rollout.state = .aborted
        rollout.reason = reason
        for index in devices.indices where !devices[index].state.isFinal { devices[index].state = .cancelled }
    }

    /// Releases waves whose predecessors are all final; completes the rollout after the last.
    static func advance(_ rollout: inout RolloutRecord, _ devices: inout [RolloutDeviceRecord]) -> [RolloutAuditEvent] {
        var events: [RolloutAuditEvent] = []
        while devices.filter({ $0.wave <= rollout.currentWave }).allSatisfy({ $0.state.isFinal }) {
            guard rollout.currentWave + 1 < rollout.waves.count else {
                rollout.state = .completed
                events.append(RolloutAuditEvent(action: "rollout.complete", details: [:]))
                break
            }
            rollout.currentWave += 1
            var released = 0
            for index in devices.indices where devices[index].wave == rollout.currentWave && devices[index].state == .scheduled {
                devices[index].state = .pending
                released += 1
            }
            events.append(RolloutAuditEvent(action: "rollout.wave", details: ["wave": String(rollout.currentWave + 1), "devices": String(released)]))
        }
        return events
    }
}
