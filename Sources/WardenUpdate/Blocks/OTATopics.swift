import WardenCore

/// The MQTT topics of OTA block delivery (see `firmware/OTA-PROTOCOL.md`).
public enum OTATopics {
    /// Where a device publishes block requests: `d/<id>/up/ota/get`.
    public static func request(device: String) -> String { "d/\(device)/up/ota/get" }
    /// Where the authority answers with blocks and status messages: `d/<id>/down/ota/block`.
    public static func blocks(device: String) -> String { "d/\(device)/down/ota/block" }
    /// Where a device publishes signed installation status reports: `d/<id>/up/ota/status`.
    public static func status(device: String) -> String { "d/\(device)/up/ota/status" }
    /// The filter the block service subscribes to.
    public static let requestFilter = "d/+/up/ota/get"
    /// The filter the rollout service subscribes to.
    public static let statusFilter = "d/+/up/ota/status"

    /// The device id in `d/<id>/up/ota/<leaf>`, if the topic has exactly that shape and the id follows the
    /// device naming rule; nil otherwise.
    public static func device(in topic: String, leaf: String) -> String? {
        let parts = topic.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 5, parts[0] == "d", parts[2] == "up", parts[3] == "ota", parts[4] == leaf else { return nil }
        let id = String(parts[1])
        guard (try? DeviceID.validate(id)) != nil else { return nil }
        return id
    }
}
