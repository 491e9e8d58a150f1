import Foundation
import Testing
import WardenCore
import WardenStore
import WardenTestSupport

@Suite("registry: device telemetry")
struct TelemetryStoreTests {
    static func enroll(_ registry: Registry, _ id: String, serial: String) throws {
        let enrollment = Enrollment(
            deviceID: try DeviceID(id), groups: [], serial: serial, der: [0x30, 0x00], notBefore: Date(),
            notAfter: Date().addingTimeInterval(86_400), publicKeyFingerprint: "k-\(id)", sha256: "sha-\(serial)")
        #expect(try registry.record([enrollment], actor: "t", now: Date()) == [.enrolled])
    }

    static func records(_ boot: UInt32, _ range: ClosedRange<UInt64>) -> [(bootEpoch: UInt32, sequence: UInt64, payload: [UInt8])] {
        range.map { (boot, $0, Array(#"{"kind":"value","seq":\#($0)}"#.utf8)) }
    }

    @Test("redeliveries are dropped and counted; one transaction per batch; unknown and revoked devices store nothing")
    func dedup() throws {
        let dir = try TemporaryDirectory()
        let registry = try Registry(path: dir.file("r.sqlite"))
        try Self.enroll(registry, "pump-001", serial: "01")
        let t0 = Date(timeIntervalSince1970: 1_800_000_000)
        #expect(try registry.telemetrySummary(of: "pump-001") == nil)
        #expect(try registry.recordTelemetry("pump-001", records: Self.records(1, 1...10), at: t0) == .init(stored: 10, duplicates: 0, pruned: 0))
        // A batch resent after a lost PUBACK, overlapping the next one.
        #expect(try registry.recordTelemetry("pump-001", records: Self.records(1, 6...15), at: t0.addingTimeInterval(1)) == .init(stored: 5, duplicates: 5, pruned: 0))
        // Same sequence numbers under a new boot epoch are new records.
        #expect(try registry.recordTelemetry("pump-001", records: Self.records(2, 1...3), at: t0.addingTimeInterval(2))?.stored == 3)
        // All duplicates: last_received does not move.
        #expect(try registry.recordTelemetry("pump-001", records: Self.records(1, 1...2), at: t0.addingTimeInterval(3))?.duplicates == 2)
        let summary = try #require(try registry.telemetrySummary(of: "pump-001"))
        #expect(summary == TelemetrySummary(stored: 18, duplicates: 7, malformedBatches: 0, kept: 18, lastReceived: t0.addingTimeInterval(2)))
        let all = try registry.telemetry(of: "pump-001", limit: 1000)
        #expect(all.count == 18)
        #expect(all.map(\.sequence) == Array(1...15) + [1, 2, 3], "oldest first, by boot then sequence")
        #expect(String(decoding: all[5].payload, as: UTF8.self) == #"{"kind":"value","seq":6}"#)
        #expect(all[5].receivedAt == t0, "the first delivery's time is kept")
        // --limit keeps the newest; --since filters by reception time.
        #expect(try registry.telemetry(of: "pump-001", limit: 2).map(\.sequence) == [2, 3])
        #expect(try registry.telemetry(of: "pump-001", since: t0.addingTimeInterval(1), limit: 100).count == 8)
        // Malformed batches are counted; unknown devices are neither stored nor counted.
        try registry.recordMalformedTelemetry("pump-001")
        try registry.recordMalformedTelemetry("ghost-001")
        #expect(try registry.telemetrySummary(of: "pump-001")?.malformedBatches == 1)
        #expect(try registry.recordTelemetry("ghost-001", records: Self.records(1, 1...3), at: t0) == nil)
        #expect(try registry.telemetrySummary(of: "ghost-001") == nil)
        // A revoked device stores nothing more.
        try Self.enroll(registry, "pump-002", serial: "02")
        _ = try registry.revoke(try DeviceID("pump-002"), reasonCode: 1, actor: "t", now: t0) { _, _ in }
        #expect(try registry.recordTelemetry("pump-002", records: Self.records(1, 1...3), at: t0) == nil)
        // Sequences beyond SQLite's integer range are refused, nothing stored.
        #expect(throws: WardenError.self) {
            try registry.recordTelemetry("pump-001", records: [(1, 16, []), (1, UInt64(Int64.max) + 1, [])], at: t0)
        }
        #expect(try registry.telemetry(of: "pump-001", limit: 1000).count == 18)
    }

    @Test("bounded: records older than the retention are pruned; the per-device row cap keeps the newest")
    func retention() throws {
        let dir = try TemporaryDirectory()
        let registry = try Registry(path: dir.file("r.sqlite"))
        try Self.enroll(registry, "pump-001", serial: "01")
        try Self.enroll(registry, "pump-002", serial: "02")
        let t0 = Date(timeIntervalSince1970: 1_800_000_000)
        try registry.recordTelemetry("pump-001", records: Self.records(1, 1...5), at: t0)
        try registry.recordTelemetry("pump-002", records: Self.records(1, 1...5), at: t0)
        let later = t0.addingTimeInterval(Registry.telemetryRetention + 1)
        #expect(try registry.recordTelemetry("pump-001", records: Self.records(1, 6...7), at: later) == .init(stored: 2, duplicates: 0, pruned: 5))
        #expect(try registry.telemetry(of: "pump-001", limit: 100).map(\.sequence) == [6, 7])
        #expect(try registry.telemetrySummary(of: "pump-001")?.kept == 2)
        #expect(try registry.telemetrySummary(of: "pump-001")?.stored == 7)
        #expect(try registry.telemetry(of: "pump-002", limit: 100).count == 5, "another device's records are untouched")
        // The row cap: fill past it in two batches.
        let cap = Registry.telemetryRowsPerDevice
        #expect(try registry.recordTelemetry("pump-002", records: Self.records(2, 1...UInt64(cap)), at: later)?.pruned == 5, "boot 1's five aged out")
        #expect(try registry.telemetrySummary(of: "pump-002")?.kept == cap)
        let outcome = try registry.recordTelemetry("pump-002", records: Self.records(3, 1...10), at: later)
        #expect(outcome?.pruned == 10)
        let summary = try #require(try registry.telemetrySummary(of: "pump-002"))
        #expect(summary.kept == cap && summary.stored == 5 + cap + 10)
        let newest = try registry.telemetry(of: "pump-002", limit: 3)
        #expect(newest.map(\.bootEpoch) == [3, 3, 3] && newest.map(\.sequence) == [8, 9, 10])
        let oldest = try #require(try registry.telemetry(of: "pump-002", limit: cap).first)
        #expect(oldest.bootEpoch == 2 && oldest.sequence == 11, "the oldest 10 rows went")
    }
}
