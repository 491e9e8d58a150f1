@testable import EdgeAgent
import Foundation
import Synchronization
import Testing
import WardenCore
import WardenTestSupport

/// The flight recorder's ring on disk: bound, wrap-around, torn tails, time-range queries, disk failures, and the
/// remote query's wire format.
@Suite("flight recorder: bounded ring, torn tails, time-range queries, query wire format")
struct RecorderTests {
    /// A settable clock (unix ms).
    final class Clock: Sendable {
        let ms = Mutex<Int64>(1_700_000_000_000)
        func now() -> Date { Date(timeIntervalSince1970: Double(ms.withLock { $0 }) / 1000) }
        func advance(_ delta: Int64) { ms.withLock { $0 += delta } }
    }

    static func size(of directory: String) -> Int {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.reduce(0) { total, name in
            total + (((try? FileManager.default.attributesOfItem(atPath: directory + "/" + name))?[.size] as? Int) ?? 0)
        }
    }

    static let small = FlightRecorder.Options(segmentCount: 3, segmentBytes: 4096, pendingBytes: 8192, flushInterval: .milliseconds(50))

    @Test("the ring never exceeds segmentCount × segmentBytes; after wrapping it keeps the newest entries, contiguous, across a reopen")
    func wrapAround() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("recorder")
        let recorder = FlightRecorder(directory: path, options: Self.small)
        for i in 1...2000 {
            recorder.record(.log, subsystem: "test", "entry \(i) " + String(repeating: "x", count: i % 50))
            if i % 100 == 0 { recorder.flush() }
            #expect(Self.size(of: path) <= 3 * 4096)
        }
        recorder.close()
        #expect(Self.size(of: path) <= 3 * 4096)
        let files = try FileManager.default.contentsOfDirectory(atPath: path).sorted()
        #expect(files == ["segment-0.log", "segment-1.log", "segment-2.log"])

        let reopened = FlightRecorder(directory: path, options: Self.small)
        let all = reopened.query(since: .min, until: .max, limit: 10_000)
        #expect(all.entries.count > 50 && all.entries.count < 2000, "\(all.entries.count)")
        #expect(all.entries.last?.message.hasPrefix("entry 2000 ") == true)
        #expect(all.entries.last?.seq == 2000)
        let seqs = all.entries.map(\.seq)
        #expect(seqs == Array(seqs.first!...seqs.last!), "contiguous, oldest first")
        #expect(!all.entries.contains { $0.message.hasPrefix("entry 1 ") }, "the oldest were overwritten")
        // New entries continue the sequence after a reopen.
        reopened.record(.decision, subsystem: "test", "after reopen")
        reopened.flush()
        #expect(reopened.query(since: .min, until: .max, limit: 1).entries.first?.seq == 2001)
        reopened.close()
    }

    @Test("a torn tail (truncated mid-entry), a flipped byte and a garbage segment are skipped, never crash the reader; writing resumes after the last intact entry")
    func tornTail() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("recorder")
        let recorder = FlightRecorder(directory: path, options: Self.small)
        for i in 1...10 { recorder.record(.log, subsystem: "test", "entry \(i)") }
        recorder.close()
        let segment = path + "/segment-0.log"
        let bytes = try #require(FileManager.default.contents(atPath: segment))
        // kill -9 mid-write: the last entry is cut in the middle.
        try bytes.prefix(bytes.count - 5).write(to: URL(fileURLWithPath: segment))
        // Garbage in another segment (a sector of noise).
        var rng = SystemRandomNumberGenerator()
        try Data((0..<4096).map { _ in UInt8.random(in: 0...255, using: &rng) }).write(to: URL(fileURLWithPath: path + "/segment-1.log"))

        let reopened = FlightRecorder(directory: path, options: Self.small)
        let after = reopened.query(since: .min, until: .max, limit: 100)
        #expect(after.entries.map(\.message) == (1...9).map { "entry \($0)" })
        reopened.record(.connect, subsystem: "session", "connected again")
        reopened.close()
        let resumed = FlightRecorder(directory: path, options: Self.small).query(since: .min, until: .max, limit: 100)
        #expect(resumed.entries.map(\.message) == (1...9).map { "entry \($0)" } + ["connected again"])
        #expect(resumed.entries.last?.seq == 10)

        // A flipped byte inside entry 4 hides entries 4… (the reader stops at the first bad checksum).
        var flipped = try #require(FileManager.default.contents(atPath: segment))
        let entrySize = flipped.count / 10
        flipped[3 * entrySize + 12] ^= 0xFF
        try flipped.write(to: URL(fileURLWithPath: segment))
        let damaged = FlightRecorder(directory: path, options: Self.small)
        #expect(damaged.query(since: .min, until: .max, limit: 100).entries.map(\.message) == (1...3).map { "entry \($0)" })
        damaged.close()
    }

    @Test("queries select since ≤ t ≤ until, return the newest `limit` of them oldest first, and say when the limit cut")
    func timeRange() throws {
        let dir = try TemporaryDirectory()
        let clock = Clock()
        let recorder = FlightRecorder(directory: dir.file("recorder"), options: Self.small, clock: clock.now)
        let t0: Int64 = 1_700_000_000_000
        for i in 0..<20 {
            recorder.record(i % 2 == 0 ? .log : .decision, subsystem: "test", "at \(i)")
            clock.advance(1000)
        }
        let middle = recorder.query(since: t0 + 5000, until: t0 + 9000, limit: 100)
        #expect(middle.entries.map(\.message) == ["at 5", "at 6", "at 7", "at 8", "at 9"])
        #expect(middle.entries.map(\.time) == [5, 6, 7, 8, 9].map { t0 + $0 * 1000 })
        #expect(!middle.truncated && middle.matched == 5)
        let limited = recorder.query(since: t0 + 5000, until: t0 + 9000, limit: 2)
        #expect(limited.entries.map(\.message) == ["at 8", "at 9"])
        #expect(limited.truncated && limited.matched == 5)
        #expect(recorder.query(since: t0 + 100_000, until: .max, limit: 10).entries.isEmpty)
        #expect(recorder.query(since: .min, until: t0 - 1, limit: 10).entries.isEmpty)
        #expect(middle.entries[0].kind == .decision && middle.entries[1].kind == .log)
        recorder.close()
    }

    @Test("a recorder directory that cannot be created degrades the recorder's health (entries stay queryable in memory) and recovers once the cause is removed")
    func diskFailure() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("recorder")
        // A stray regular file where the directory belongs (works as root too, unlike chmod).
        _ = try dir.write("recorder", "not a directory")
        let health = AgentHealth()
        let recorder = FlightRecorder(directory: path, options: Self.small, health: health)
        #expect(health.entry(FlightRecorder.healthName)?.state == "degraded")
        #expect(health.entry(FlightRecorder.healthName)?.reason?.contains("not a directory") == true)
        recorder.record(.connect, subsystem: "session", "connected while the disk fails")
        recorder.flush()
        #expect(recorder.query(since: .min, until: .max, limit: 10).entries.map(\.message) == ["connected while the disk fails"])
        // Overflow the memory bound: the oldest are dropped and the loss is recorded once the disk is back.
        for i in 0..<200 { recorder.record(.log, subsystem: "test", "filler \(i) " + String(repeating: "y", count: 100)) }
        try FileManager.default.removeItem(atPath: path)
        let deadline = Date().addingTimeInterval(5)
        while health.entry(FlightRecorder.healthName)?.state != "ok", Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        #expect(health.entry(FlightRecorder.healthName)?.state == "ok")
        recorder.flush()
        let entries = recorder.query(since: .min, until: .max, limit: 1000).entries
        #expect(entries.contains { $0.kind == .fault && $0.message.contains("entries lost") })
        #expect(entries.last?.message.hasPrefix("filler 199") == true)
        var isDirectory: ObjCBool = false
        #expect(FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue)
        recorder.close()
    }

    @Test("health changes of watched subsystems are recorded as health entries")
    func healthWatch() throws {
        let dir = try TemporaryDirectory()
        let health = AgentHealth()
        let recorder = FlightRecorder(directory: dir.file("recorder"), options: Self.small, health: health)
        recorder.watch(health)
        health.ok("telemetry")
        Thread.sleep(forTimeInterval: 0.2)
        health.degraded("telemetry", reason: "PUBACK 135")
        Thread.sleep(forTimeInterval: 0.2)
        recorder.flush()
        let messages = recorder.query(since: .min, until: .max, limit: 100).entries.filter { $0.kind == .health && $0.subsystem == "telemetry" }.map(\.message)
        #expect(messages == ["new → ok", "ok → degraded: PUBACK 135"])
        recorder.close()
    }

    @Test("session log lines get their kind and subsystem; messages are cut at 512 UTF-8 bytes on a character boundary")
    func classification() {
        #expect(FlightRecorder.classify("connected to 127.0.0.1:8883 as gw-1 (session ab)") == (.connect, "session"))
        #expect(FlightRecorder.classify("link to the broker lost") == (.disconnect, "session"))
        #expect(FlightRecorder.classify("connection failed: refused") == (.disconnect, "session"))
        #expect(FlightRecorder.classify("telemetry: failed: PUBACK 135") == (.fault, "telemetry"))
        #expect(FlightRecorder.classify("telemetry: delivered 3 record(s)") == (.log, "telemetry"))
        #expect(FlightRecorder.classify("reconnecting in 0.20 s") == (.log, "session"))
        #expect(FlightRecorder.classify("Weird: x") == (.log, "session"))
        let long = RecorderEntry(time: 0, kind: .log, subsystem: String(repeating: "s", count: 100), message: String(repeating: "é", count: 400))
        #expect(long.message.utf8.count == 512 && long.message.count == 256)
        #expect(long.subsystem.utf8.count == 32)
    }

    @Test("queries are parsed strictly: bad JSON, bad request ids, non-integers, reversed ranges, bad limits and unknown fields are refused")
    func queryParsing() throws {
        let good = try RecorderWire.Query.parse(Array(#"{"request":"r-1_A","since":5,"until":9,"limit":3}"#.utf8))
        #expect(good == RecorderWire.Query(request: "r-1_A", since: 5, until: 9, limit: 3))
        let defaults = try RecorderWire.Query.parse(Array(#"{"request":"abc"}"#.utf8))
        #expect(defaults == RecorderWire.Query(request: "abc", since: .min, until: .max, limit: RecorderWire.defaultLimit))
        func refused(_ text: String) -> RecorderWire.QueryError? {
            do { _ = try RecorderWire.Query.parse(Array(text.utf8)); return nil } catch { return error }
        }
        #expect(refused("not json")?.request == nil)
        #expect(refused("[1,2]")?.request == nil)
        #expect(refused(#"{"request":"a/b"}"#)?.request == nil, "a topic separator in the request id")
        #expect(refused(#"{"request":"+"}"#)?.request == nil)
        #expect(refused(#"{"request":""}"#)?.request == nil)
        #expect(refused(#"{"request":"\#(String(repeating: "a", count: 65))"}"#)?.request == nil)
        #expect(refused(#"{"request":"r","since":"yesterday"}"#)?.request == "r")
        #expect(refused(#"{"request":"r","since":1.5}"#)?.request == "r")
        #expect(refused(#"{"request":"r","limit":true}"#)?.request == "r")
        #expect(refused(#"{"request":"r","since":10,"until":9}"#)?.reason.contains("after") == true)
        #expect(refused(#"{"request":"r","limit":0}"#)?.reason.contains("limit") == true)
        #expect(refused(#"{"request":"r","limit":10001}"#)?.reason.contains("limit") == true)
        #expect(refused(##"{"request":"r","topic":"#"}"##)?.reason.contains("unknown") == true)
        #expect(refused("{\"request\":\"r\",\"pad\":\"" + String(repeating: "x", count: 5000) + "\"}")?.request == nil, "oversized")
        let error = try JSONSerialization.jsonObject(with: Data(RecorderWire.errorPart(request: "r", reason: #"bad "quote""#))) as? [String: Any]
        #expect(error?["done"] as? Bool == true && error?["error"] as? String == #"bad "quote""#)
    }

    @Test("a large answer is split into parts of at most 64 KiB, numbered, only the last marked done, and every entry arrives once")
    func answerParts() throws {
        let entries = (0..<600).map { i in
            RecorderEntry(seq: UInt64(i + 1), time: Int64(i), kind: .log, subsystem: "test", message: "\(i) " + String(repeating: "\"\\", count: 200))
        }
        let parts = RecorderFeature.parts(request: "q1", result: .init(entries: entries, matched: 900))
        #expect(parts.count > 3)
        var seen: [UInt64] = []
        for (index, part) in parts.enumerated() {
            #expect(part.count <= RecorderWire.maximumPartBytes)
            let object = try #require(try JSONSerialization.jsonObject(with: Data(part)) as? [String: Any])
            #expect(object["request"] as? String == "q1")
            #expect(object["part"] as? Int == index)
            #expect(object["done"] as? Bool == (index == parts.count - 1))
            for entry in try #require(object["entries"] as? [[String: Any]]) { seen.append(UInt64(entry["seq"] as? Int ?? -1)) }
            if index == parts.count - 1 {
                #expect(object["matched"] as? Int == 900 && object["truncated"] as? Bool == true)
            }
        }
        #expect(seen == (1...600).map(UInt64.init))
        let decoded = try JSONDecoder().decode(RecorderEntry.self, from: Data(#"{"seq":1,"t":2,"kind":"fault","subsystem":"s","message":"m"}"#.utf8))
        #expect(decoded.kind == .fault)
        let empty = RecorderFeature.parts(request: "q2", result: .init(entries: [], matched: 0))
        #expect(empty.count == 1 && String(decoding: empty[0], as: UTF8.self).contains(#""done":true"#))
    }
}
