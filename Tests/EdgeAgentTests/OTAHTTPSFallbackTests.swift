import Foundation
import Testing
import WardenTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// The OTA client's HTTPS Range fallback (firmware/OTA-PROTOCOL.md §8), end to end with real `warden serve`
/// (Mosquitto + HTTPS with the fleet CA) and a real `warden-agent run`.
@Suite("agent OTA client: HTTPS Range fallback when the block service cannot be reached", .serialized)
struct OTAHTTPSFallbackTests {
    /// The fleet default, plus a deny on the device's block requests: the block service never hears the device.
    static let policy = """
        { "version": 1, "statements": [
          { "sid": "connect", "effect": "allow", "principals": ["device:*"], "actions": ["mqtt:connect"], "resources": ["client:${device.id}"] },
          { "sid": "up", "effect": "allow", "principals": ["device:*"], "actions": ["mqtt:publish"], "resources": ["topic:d/${device.id}/up/#"] },
          { "sid": "no-block-requests", "effect": "deny", "principals": ["device:*"], "actions": ["mqtt:publish"], "resources": ["topic:d/${device.id}/up/ota/get"] },
          { "sid": "down", "effect": "allow", "principals": ["device:*"], "actions": ["mqtt:subscribe", "mqtt:receive"], "resources": ["topic:d/${device.id}/down/#"] },
          { "sid": "tuf", "effect": "allow", "principals": ["device:*"], "actions": ["mqtt:subscribe", "mqtt:receive"], "resources": ["topic:warden/tuf/#"] } ] }
        """

    @Test("block requests refused by the broker → after a few silent rounds the agent fetches the missing blocks over HTTPS Range (fleet CA only), the whole-image SHA-256 checks them, and the release installs byte-identical")
    func httpsRangeFallback() throws {
        let fleet = try OTAFleet(policy: Self.policy, https: true)
        let device = try fleet.enroll("gw-https-1", group: "lab", hardware: "board-h")
        let image = OTAFleet.image(700_000, seed: 41)
        try fleet.addFirmware(image, name: "gw", version: "2.0.0", hardware: "board-h", blockSize: "16KiB")
        let log = fleet.dir.file("agent.log")
        let agent = try fleet.start(device, log: log)
        defer { agent.stop(SIGKILL, grace: 0) }

        let rollout = try fleet.createRollout("gw@2.0.0", group: "lab")
        #expect(fleet.waitForRollout(rollout, "succeeded", timeout: 90), "\(OTAFleet.text(log).suffix(3000))")
        let text = OTAFleet.text(log)
        #expect(text.contains("the broker refused the block request (PUBACK 135)"), "the MQTT path was really closed")
        #expect(text.contains("block(s) over HTTPS (Range)"), "\(text.suffix(2000))")
        #expect(OTAFleet.activeImage(device) == image, "installed byte-identical from the HTTPS fallback")
    }
}
