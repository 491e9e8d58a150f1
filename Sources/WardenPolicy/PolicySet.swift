import Foundation
import WardenCore

extension PolicyDocument {
    /// The fleet default, identical to the shipped `policies/default.json` (a test keeps them equal).
    public static let builtInDefault = PolicyDocument(
        version: 1,
        description: "Fleet default: each device may publish only under its own up/ tree and subscribe to and receive only its own down/ tree. Everything else is denied by default.",
        statements: [
            Statement(
                sid: "device-publish-own-up", effect: .allow, principals: ["device:*"], actions: ["mqtt:publish"],
                resources: ["topic:d/${device.id}/up/#"]),
            Statement(
                sid: "device-receive-own-down", effect: .allow, principals: ["device:*"],
                actions: ["mqtt:subscribe", "mqtt:receive"], resources: ["topic:d/${device.id}/down/#"]),
        ])

    /// The documents in force for a Warden home: every `*.json` in `$WARDEN_HOME/policies/`, in name order, or the
    /// built-in default when that directory has none.
    public static func load(home: String) throws -> [PolicyDocument] {
        let directory = home + "/policies"
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(".json") }.sorted()
        guard !names.isEmpty else { return [builtInDefault] }
        return try names.map { name in
            let path = directory + "/" + name
            return try parse(try SecureFile.read(path, limit: maximumSize, what: "policy file"), source: path)
        }
    }
}
