import Testing
import WardenCore

@Suite("device id naming rule")
struct DeviceIDTests {
    @Test("valid ids", arguments: ["abc", "pump-001", "0sensor", "a23456789012345678901234567890123456789012345678901234567890123"])
    func valid(id: String) throws {
        #expect(try DeviceID(id).rawValue == id)
    }

    @Test("malformed ids are bad input", arguments: ["", "ab", "-pump", "Pump", "pump_1", "pump 1", "pümp", String(repeating: "a", count: 64)])
    func malformed(id: String) {
        #expect(throws: WardenError.badInput("")) { try DeviceID(id) }
    }

    @Test("MQTT wildcard and separator characters are a policy violation", arguments: ["a+b", "abc#", "d/evice"])
    func wildcards(id: String) {
        #expect(throws: WardenError.policy("")) { try DeviceID(id) }
    }

    @Test("reserved service and admin names", arguments: ["admin", "mosquitto", "warden", "warden-control", "mosquitto-bridge", "root", "broker"])
    func reserved(id: String) {
        #expect(throws: WardenError.policy("")) { try DeviceID(id) }
    }
}

@Suite("durations")
struct DurationTests {
    @Test("parses units", arguments: [("90d", 90 * 86_400), ("3h", 10_800), ("20y", 20 * 365 * 86_400), ("45m", 2_700), ("2w", 1_209_600), ("30s", 30)] as [(String, Int64)])
    func parses(text: String, seconds: Int64) throws {
        #expect(try WardenDuration(parsing: text).seconds == seconds)
    }

    @Test("rejects", arguments: ["", "d", "0d", "-1d", "5x", "1.5d", "999999999999y", "101y"])
    func rejects(text: String) {
        #expect(throws: WardenError.badInput("")) { try WardenDuration(parsing: text) }
    }
}
