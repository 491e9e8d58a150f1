import Foundation
import Testing
import WardenCore
import WardenStore
import WardenTestSupport

@Suite("registry: device presence")
struct PresenceStoreTests {
    @Test("idempotent births, a stale Last Will ignored, unknown devices ignored, all marked down on a fresh broker")
    func presence() throws {
        let dir = try TemporaryDirectory()
        let registry = try Registry(path: dir.file("r.sqlite"))
        let enrollment = Enrollment(
            deviceID: try DeviceID("pump-001"), groups: [], serial: "01", der: [0x30, 0x00], notBefore: Date(),
            notAfter: Date().addingTimeInterval(86_400), publicKeyFingerprint: "k", sha256: "sha-01")
        #expect(try registry.record([enrollment], actor: "t", now: Date()) == [.enrolled])
        let t0 = Date(timeIntervalSince1970: 1_800_000_000)
        #expect(try registry.presence(of: "pump-001") == nil)
        #expect(try registry.recordPresence("pump-001", connected: true, session: "a", at: t0) == .recorded)
        #expect(try registry.recordPresence("pump-001", connected: true, session: "a", at: t0.addingTimeInterval(5)) == .recorded)
        var seen = try #require(try registry.presence(of: "pump-001"))
        #expect(seen.connected && seen.session == "a" && seen.lastSeen == t0.addingTimeInterval(5) && seen.changedAt == t0)
        // A reconnect (session b) races the old session's Last Will: the will of a is ignored.
        #expect(try registry.recordPresence("pump-001", connected: true, session: "b", at: t0.addingTimeInterval(6)) == .recorded)
        #expect(try registry.recordPresence("pump-001", connected: false, session: "a", at: t0.addingTimeInterval(7)) == .staleSession)
        #expect(try registry.presence(of: "pump-001")?.connected == true)
        #expect(try registry.recordPresence("pump-001", connected: false, session: "b", at: t0.addingTimeInterval(8)) == .recorded)
        seen = try #require(try registry.presence(of: "pump-001"))
        #expect(!seen.connected && seen.changedAt == t0.addingTimeInterval(8))
        #expect(try registry.recordPresence("ghost-001", connected: true, session: "x", at: t0) == .notActive)
        #expect(try registry.presence(of: "ghost-001") == nil)
        _ = try registry.recordPresence("pump-001", connected: true, session: "c", at: t0.addingTimeInterval(9))
        try registry.markAllDisconnected(at: t0.addingTimeInterval(10))
        seen = try #require(try registry.presence(of: "pump-001"))
        #expect(!seen.connected && seen.lastSeen == t0.addingTimeInterval(9), "last seen is kept")
    }

    @Test("presence messages parse strictly")
    func wire() throws {
        let message = try PresenceMessage(state: .online, session: "boot-42_a")
        #expect(try PresenceMessage.parse(message.payload) == message)
        for bad in [#"{"state":"online"}"#, #"{"state":"up","session":"a"}"#, #"{"state":"online","session":"a b"}"#,
                    #"{"state":"online","session":"a","extra":1}"#, "[]", "online", String(repeating: " ", count: 300)] {
            #expect(throws: WardenError.self, "\(bad)") { try PresenceMessage.parse(Array(bad.utf8)) }
        }
        #expect(PresenceMessage.device(inTopic: "d/pump-001/up/presence") == "pump-001")
        #expect(PresenceMessage.device(inTopic: "d/pump-001/up/telemetry") == nil)
        #expect(PresenceMessage.device(inTopic: "d/+/up/presence") == nil)
    }
}
