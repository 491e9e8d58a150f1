import EdgeCore
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A fresh temporary directory.
func temporaryDirectory(_ name: String) -> String {
    let path = NSTemporaryDirectory() + "edge-\(name)-\(UUID().uuidString)"
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

@Suite struct QueueTests {
    @Test("CRC-32C check value (RFC 3720 B.4)")
    func crcCheckValue() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
        #expect(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
    }

    @Test("appends come back in order with ids, across reopen, for every policy",
          arguments: [CommitPolicy.perMessage, .group(milliseconds: 5), .noSync])
    func roundTrip(policy: CommitPolicy) throws {
        let dir = temporaryDirectory("rt")
        var ids: [MessageID] = []
        do {
            let q = try DurableQueue(directory: dir, options: .init(device: "dev-1", commit: policy, segmentBytes: 4096))
            #expect(q.bootEpoch == 1)
            for i in 0..<500 { ids.append(try q.append(Array("m\(i)".utf8), lane: .history)) }
            try q.commit()
            #expect(q.acknowledgedSequence == 500)
        }
        let q = try DurableQueue(directory: dir, options: .init(device: "dev-1", commit: policy, segmentBytes: 4096))
        #expect(q.bootEpoch == 2)
        let back = try q.readAll(lane: .history)
        #expect(back.map(\.id) == ids)
        #expect(back.map { String(decoding: $0.payload, as: UTF8.self) } == (0..<500).map { "m\($0)" })
        // The sequence continues; the boot epoch makes ids unique even if a sequence were reused.
        let next = try q.append([1], lane: .history)
        #expect(next.sequence == 501 && next.bootEpoch == 2 && next.device == "dev-1")
    }

    @Test("a torn tail is truncated and never surfaces; earlier records survive")
    func tornTail() throws {
        let dir = temporaryDirectory("torn")
        do {
            let q = try DurableQueue(directory: dir, options: .init(device: "d", commit: .perMessage))
            for i in 0..<10 { try q.append(Array("r\(i)".utf8), lane: .history) }
        }
        let seg = dir + "/history/00000000000000000001.seg"
        let h = try #require(FileHandle(forUpdatingAtPath: seg))
        let size = h.seekToEndOfFile()
        // Append half a record header plus garbage, as a crash mid-write would leave.
        h.write(Data([0x10, 0, 0, 0, 0xde, 0xad, 0xbe]))
        try h.close()
        let q = try DurableQueue(directory: dir, options: .init(device: "d", commit: .perMessage))
        #expect(q.stats.truncatedBytes == 7)
        #expect(try q.readAll(lane: .history).count == 10)
        #expect(try FileManager.default.attributesOfItem(atPath: seg)[.size] as? UInt64 == size)
    }

    @Test("a corrupted byte inside the last record cuts the log there (CRC)")
    func corruptRecord() throws {
        let dir = temporaryDirectory("crc")
        do {
            let q = try DurableQueue(directory: dir, options: .init(device: "d", commit: .perMessage))
            for i in 0..<5 { try q.append(Array("payload-\(i)".utf8), lane: .alert) }
        }
        let seg = dir + "/alert/00000000000000000001.seg"
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: seg)))
        bytes[bytes.count - 2] ^= 0x40
        try Data(bytes).write(to: URL(fileURLWithPath: seg))
        let q = try DurableQueue(directory: dir, options: .init(device: "d", commit: .perMessage))
        #expect(try q.readAll(lane: .alert).map(\.id.sequence) == [1, 2, 3, 4])
        // The lost sequence number is never reissued with another payload.
        #expect(try q.append([0], lane: .alert).sequence == 5)
    }

    @Test("priority lanes drain alerts, then state, then history; acknowledge consumes")
    func lanesAndAcknowledge() throws {
        let dir = temporaryDirectory("lanes")
        let q = try DurableQueue(directory: dir, options: .init(device: "d", commit: .perMessage, segmentBytes: 4096))
        for i in 0..<300 { try q.append(Array("h\(i)".utf8), lane: .history) }
        try q.append(Array("state".utf8), lane: .state)
        try q.append(Array("alert".utf8), lane: .alert)
        var batch = try q.peek(maxRecords: 3)
        #expect(batch.map(\.lane) == [.alert, .state, .history])
        try q.acknowledge(batch)
        batch = try q.peek(maxRecords: 1000)
        #expect(batch.count == 299 && batch.allSatisfy { $0.lane == .history })
        try q.acknowledge(batch)
        #expect(try q.peek().isEmpty)
        // Consumed segments are deleted and the cursor survives a reopen.
        let files = try FileManager.default.contentsOfDirectory(atPath: dir + "/history").filter { $0.hasSuffix(".seg") }
        #expect(files.count == 1)
        try q.append(Array("after".utf8), lane: .history)
        let q2Dir = dir
        _ = q2Dir
    }

    @Test("cursor persists: acknowledged records are not redelivered after reopen")
    func cursorPersists() throws {
        let dir = temporaryDirectory("cursor")
        do {
            let q = try DurableQueue(directory: dir, options: .init(device: "d", commit: .perMessage))
            for i in 0..<20 { try q.append(Array("x\(i)".utf8), lane: .history) }
            try q.acknowledge(try q.peek(maxRecords: 12))
        }
        let q = try DurableQueue(directory: dir, options: .init(device: "d", commit: .perMessage))
        #expect(try q.peek().map(\.id.sequence) == Array(13...20))
    }

    @Test("a cursor beyond a truncated tail (power loss under none) does not hide later appends")
    func cursorPastTail() throws {
        let dir = temporaryDirectory("cursor-tail")
        do {
            let q = try DurableQueue(directory: dir, options: .init(device: "d", commit: .perMessage))
            for i in 0..<10 { try q.append(Array("x\(i)".utf8), lane: .history) }
            try q.acknowledge(try q.peek())
        }
        // The last records never reached the disk, but the cursor did.
        let seg = dir + "/history/00000000000000000001.seg"
        let h = try #require(FileHandle(forUpdatingAtPath: seg))
        try h.truncate(atOffset: 40)
        try h.close()
        let q = try DurableQueue(directory: dir, options: .init(device: "d", commit: .perMessage))
        try q.append(Array("new".utf8), lane: .history)
        #expect(try q.peek().map { String(decoding: $0.payload, as: UTF8.self) } == ["new"])
    }

    @Test("full disk budget: oldest history is shed first, alerts are kept, never a crash")
    func budgetSheds() throws {
        let dir = temporaryDirectory("budget")
        let q = try DurableQueue(directory: dir, options: .init(device: "d", commit: .noSync, maxBytes: 64 << 10))
        for i in 0..<50 { try q.append(Array("alert-\(i)".utf8), lane: .alert) }
        let payload = [UInt8](repeating: 0x61, count: 200)
        for _ in 0..<2000 { try q.append(payload, lane: .history) }
        try q.commit()
        let s = q.currentStats()
        #expect(s.bytesUsed <= 64 << 10)
        #expect((s.shed[.history] ?? 0) > 0)
        #expect(s.shed[.alert] == nil)
        #expect(try q.readAll(lane: .alert).count == 50)
        let history = try q.readAll(lane: .history)
        // What is kept is the newest history, in order, ending with the last append.
        #expect(history.last?.id.sequence == 2050)
        #expect(zip(history, history.dropFirst()).allSatisfy { $0.id.sequence < $1.id.sequence })
    }

    @Test("alerts beyond their half of the budget give a clear queueFull error; history and state keep working")
    func alertsFull() throws {
        let dir = temporaryDirectory("full")
        let q = try DurableQueue(directory: dir, options: .init(device: "d", commit: .noSync, maxBytes: 64 << 10))
        let payload = [UInt8](repeating: 0x61, count: 1000)
        var error: EdgeError?
        for _ in 0..<100 {
            do { try q.append(payload, lane: .alert) } catch let e as EdgeError { error = e; break }
        }
        #expect(error?.code == .queueFull)
        #expect(error?.message.contains("queue is full") == true)
        try q.commit()
        // Alerts may use half the budget: 32 records of 1020 bytes in 64 KiB.
        let kept = try q.readAll(lane: .alert).count
        #expect(kept >= 30 && kept <= 32)
        // History still has room, and state is capped at a quarter of the budget by shedding old state.
        for _ in 0..<200 { try q.append(payload, lane: .history) }
        for _ in 0..<200 { try q.append(payload, lane: .state) }
        try q.commit()
        #expect(q.currentStats().bytesUsed <= 64 << 10)
        #expect((q.currentStats().shed[.state] ?? 0) > 0)
        #expect(try q.readAll(lane: .alert).count == kept)
    }

    @Test("injected ENOSPC and EROFS on write surface as storageUnavailable; acknowledged data stays",
          arguments: [ENOSPC, EROFS])
    func injectedStorageFailure(err: Int32) throws {
        let dir = temporaryDirectory("fault")
        let broken = LockedFlag()
        let faults: WriteFaultInjector = { path, _ in broken.value && path.hasSuffix(".seg") ? err : nil }
        let q = try DurableQueue(directory: dir, options: .init(device: "d", commit: .perMessage, faults: faults))
        for i in 0..<5 { try q.append(Array("ok\(i)".utf8), lane: .history) }
        broken.value = true
        #expect(throws: EdgeError(.storageUnavailable, "")) { try q.append(Array("lost".utf8), lane: .history) }
        broken.value = false
        try q.append(Array("ok5".utf8), lane: .history)
        // The failed append (sequence 6) is never reported as acknowledged; the others are.
        #expect(!q.isAcknowledged(6))
        #expect((1...5).allSatisfy(q.isAcknowledged) && q.isAcknowledged(7))
        let back = try q.readAll(lane: .history).map { String(decoding: $0.payload, as: UTF8.self) }
        #expect(back == ["ok0", "ok1", "ok2", "ok3", "ok4", "ok5"])
    }

    @Test("group commit: a failed commit never acknowledges the appends it dropped")
    func groupCommitFailure() throws {
        let dir = temporaryDirectory("groupfail")
        let broken = LockedFlag()
        let faults: WriteFaultInjector = { path, _ in broken.value && path.hasSuffix(".seg") ? ENOSPC : nil }
        let q = try DurableQueue(directory: dir, options: .init(device: "d", commit: .group(milliseconds: 10_000), faults: faults))
        for i in 0..<3 { try q.append(Array("a\(i)".utf8), lane: .history) }
        try q.commit()
        for i in 3..<6 { try q.append(Array("b\(i)".utf8), lane: .history) }
        #expect(!q.isAcknowledged(4))
        broken.value = true
        #expect(throws: EdgeError(.storageUnavailable, "")) { try q.commit() }
        broken.value = false
        try q.append(Array("c".utf8), lane: .history)
        try q.commit()
        #expect((1...3).allSatisfy(q.isAcknowledged) && q.isAcknowledged(7))
        #expect(!(4...6).contains(where: q.isAcknowledged))
        #expect(try q.readAll(lane: .history).map(\.id.sequence) == [1, 2, 3, 7])
    }

    @Test("a queue path that cannot be a directory gives a clear error")
    func unusablePath() throws {
        let dir = temporaryDirectory("notdir")
        let file = dir + "/plain-file"
        _ = FileManager.default.createFile(atPath: file, contents: Data("x".utf8))
        #expect(throws: EdgeError(.storageUnavailable, "")) {
            _ = try DurableQueue(directory: file + "/queue", options: .init(device: "d"))
        }
        #expect(throws: EdgeError(.storageUnavailable, "")) {
            _ = try DurableQueue(directory: file, options: .init(device: "d"))
        }
    }

    @Test("a second process or instance cannot open the same queue")
    func exclusiveLock() throws {
        let dir = temporaryDirectory("lock")
        let q = try DurableQueue(directory: dir, options: .init(device: "d"))
        #expect(throws: EdgeError(.io, "")) { _ = try DurableQueue(directory: dir, options: .init(device: "d")) }
        _ = q
    }

    @Test("a queue of another device is refused")
    func deviceMismatch() throws {
        let dir = temporaryDirectory("dev")
        do { _ = try DurableQueue(directory: dir, options: .init(device: "a")) }
        #expect(throws: EdgeError(.invalidConfig, "")) { _ = try DurableQueue(directory: dir, options: .init(device: "b")) }
    }

    @Test("commit policy parsing", arguments: [
        ("per-message", CommitPolicy.perMessage as CommitPolicy?), ("none", .noSync), ("group", .group(milliseconds: 10)),
        ("group:25", .group(milliseconds: 25)), ("group:-1", nil), ("group:x", nil), ("fsync", nil), ("", nil),
    ])
    func policyParsing(text: String, expected: CommitPolicy?) {
        #expect(CommitPolicy(text) == expected)
    }
}

/// A flag shared with a `@Sendable` fault injector.
final class LockedFlag: @unchecked Sendable {
    // @unchecked: every access to `stored` goes through `lock`.
    private let lock = NSLock()
    private var stored = false
    var value: Bool {
        get { lock.withLock { stored } }
        set { lock.withLock { stored = newValue } }
    }
}
