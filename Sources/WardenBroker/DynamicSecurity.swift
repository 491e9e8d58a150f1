import Foundation
import WardenCore
import WardenPolicy

/// The Mosquitto 2.0 dynamic-security plugin: its config file and its control commands
/// (`$CONTROL/dynamic-security/v1`).
public enum DynamicSecurity {
    /// Warden's control identity: a reserved name no device can hold, authenticated by certificate.
    public static let controlUsername = "warden-control"
    /// The CLI's control identity.
    public static let cliControlUsername = "warden-control-cli"
    /// The OTA block service's identity (`warden serve`): its own name, because Mosquitto takes the username as
    /// the client id and a shared name would make the services take over each other's session.
    public static let otaUsername = "warden-ota"
    /// The TUF metadata publisher's identity (`warden serve`), which keeps `warden/tuf/#` retained and current.
    public static let tufUsername = "warden-tuf"
    /// The presence tracker's identity (`warden serve`), which reads devices' birth and Last Will messages.
    public static let presenceUsername = "warden-presence"
    /// The OTA assignment publisher's identity (`warden serve`), which keeps `d/<id>/down/ota/assignment` retained.
    public static let assignmentUsername = "warden-assign"
    /// The flight-recorder query identity (`warden device timeline`), which asks devices for their recorder entries.
    public static let recorderUsername = "warden-recorder"
    /// The config publisher's identity (`warden serve`), which keeps each device's latest signed agent config retained
    /// on `d/<id>/down/config`.
    public static let configUsername = "warden-config"
    /// The telemetry ingest's identity (`warden serve`), which reads devices' telemetry batches.
    public static let telemetryUsername = "warden-telemetry"
    /// Every control identity; reconciles never touch them.
    public static let controlUsernames: Set<String> = [
        controlUsername, cliControlUsername, otaUsername, tufUsername, presenceUsername, assignmentUsername, recorderUsername,
        configUsername, telemetryUsername,
    ]
    /// Their role.
    public static let controlRole = "warden-control"
    /// Command topic.
    public static let commandTopic = "$CONTROL/dynamic-security/v1"
    /// Response topic.
    public static let responseTopic = "$CONTROL/dynamic-security/v1/response"

    /// The plugin's config file.
    struct ConfigFile: Codable {
        var clients: [Client]
        var groups: [Group]
        var roles: [Role]
        var defaultACLAccess: DefaultAccess
    }

    struct Client: Codable {
        var username: String
        var textname: String?
        var roles: [RoleReference]
    }

    struct RoleReference: Codable {
        var rolename: String
    }

    struct Group: Codable {
        var groupname: String
    }

    struct Role: Codable {
        var rolename: String
        var acls: [DynsecACL]
    }

    /// Default access when no ACL matches: deny everything (Mosquitto's default allows receive).
    struct DefaultAccess: Codable {
        var publishClientSend = false
        var publishClientReceive = false
        var subscribe = false
        var unsubscribe = true
    }

    /// ACLs of the control role: the dynsec control topics, and sending to devices' down/ trees (configuration,
    /// OTA notifications), never reading their telemetry.
    static let controlACLs: [DynsecACL] = [
        DynsecACL(acltype: "publishClientSend", topic: "d/+/down/#", priority: 0, allow: true),
        DynsecACL(acltype: "publishClientSend", topic: "$CONTROL/dynamic-security/#", priority: 0, allow: true),
        DynsecACL(acltype: "publishClientReceive", topic: "$CONTROL/dynamic-security/#", priority: 0, allow: true),
        DynsecACL(acltype: "subscribePattern", topic: "$CONTROL/dynamic-security/#", priority: 0, allow: true),
    ]

    /// The OTA block service's role: read devices' OTA requests and status reports, answer on their down/ota tree.
    public static let otaRole = "warden-ota"

    /// ACLs of the OTA role (least privilege: no dynsec control, no other device topics).
    static let otaACLs: [DynsecACL] = [
        DynsecACL(acltype: "subscribePattern", topic: "d/+/up/ota/#", priority: 0, allow: true),
        DynsecACL(acltype: "publishClientReceive", topic: "d/+/up/ota/#", priority: 0, allow: true),
        DynsecACL(acltype: "publishClientSend", topic: "d/+/down/ota/#", priority: 0, allow: true),
    ]

    /// The TUF metadata publisher's role.
    public static let tufRole = "warden-tuf"

    /// ACLs of the TUF role: publish (retained) under `warden/tuf/`, nothing else.
    static let tufACLs: [DynsecACL] = [
        DynsecACL(acltype: "publishClientSend", topic: "warden/tuf/#", priority: 0, allow: true),
    ]

    /// The presence tracker's role.
    public static let presenceRole = "warden-presence"

    /// ACLs of the presence role: read `d/+/up/presence`, nothing else.
    static let presenceACLs: [DynsecACL] = [
        DynsecACL(acltype: "subscribePattern", topic: PresenceMessage.filter, priority: 0, allow: true),
        DynsecACL(acltype: "publishClientReceive", topic: PresenceMessage.filter, priority: 0, allow: true),
    ]

    /// The OTA assignment publisher's role.
    public static let assignmentRole = "warden-assign"

    /// ACLs of the assignment role: publish (retained) devices' `down/ota/assignment`, nothing else.
    static let assignmentACLs: [DynsecACL] = [
        DynsecACL(acltype: "publishClientSend", topic: "d/+/down/ota/assignment", priority: 0, allow: true),
    ]

    /// The flight-recorder query role.
    public static let recorderRole = "warden-recorder"

    /// ACLs of the recorder role: send queries to devices' `down/recorder/query` and read their `up/recorder/` answers.
    static let recorderACLs: [DynsecACL] = [
        DynsecACL(acltype: "publishClientSend", topic: "d/+/down/recorder/query", priority: 0, allow: true),
        DynsecACL(acltype: "subscribePattern", topic: "d/+/up/recorder/#", priority: 0, allow: true),
        DynsecACL(acltype: "publishClientReceive", topic: "d/+/up/recorder/#", priority: 0, allow: true),
    ]

    /// The config publisher's role.
    public static let configRole = "warden-config"

    /// ACLs of the config role: publish (retained) on every device's `down/config`, nothing else.
    static let configACLs: [DynsecACL] = [
        DynsecACL(acltype: "publishClientSend", topic: "d/+/down/config", priority: 0, allow: true),
    ]

    /// The telemetry ingest's role.
    public static let telemetryRole = "warden-telemetry"

    /// ACLs of the telemetry role: read `d/+/up/telemetry`, nothing else.
    static let telemetryACLs: [DynsecACL] = [
        DynsecACL(acltype: "subscribePattern", topic: "d/+/up/telemetry", priority: 0, allow: true),
        DynsecACL(acltype: "publishClientReceive", topic: "d/+/up/telemetry", priority: 0, allow: true),
    ]

    /// The initial config file: the control clients and one client + role per active device.
    static func initialConfig(devices: [(id: String, role: DynsecRole)]) throws -> [UInt8] {
        var clients = [
            Client(username: controlUsername, textname: "Warden control (serve)", roles: [RoleReference(rolename: controlRole)]),
            Client(username: cliControlUsername, textname: "Warden control (CLI)", roles: [RoleReference(rolename: controlRole)]),
            Client(username: otaUsername, textname: "Warden OTA block service", roles: [RoleReference(rolename: otaRole)]),
            Client(username: tufUsername, textname: "Warden TUF metadata publisher", roles: [RoleReference(rolename: tufRole)]),
            Client(username: presenceUsername, textname: "Warden presence tracker", roles: [RoleReference(rolename: presenceRole)]),
            Client(username: assignmentUsername, textname: "Warden OTA assignment publisher", roles: [RoleReference(rolename: assignmentRole)]),
            Client(username: recorderUsername, textname: "Warden flight-recorder queries", roles: [RoleReference(rolename: recorderRole)]),
            Client(username: configUsername, textname: "Warden agent config publisher", roles: [RoleReference(rolename: configRole)]),
            Client(username: telemetryUsername, textname: "Warden telemetry ingest", roles: [RoleReference(rolename: telemetryRole)]),
        ]
        var roles = [
            Role(rolename: controlRole, acls: controlACLs), Role(rolename: otaRole, acls: otaACLs),
            Role(rolename: tufRole, acls: tufACLs), Role(rolename: presenceRole, acls: presenceACLs),
            Role(rolename: assignmentRole, acls: assignmentACLs),
            Role(rolename: recorderRole, acls: recorderACLs),
            Role(rolename: configRole, acls: configACLs),
            Role(rolename: telemetryRole, acls: telemetryACLs),
        ]
        for device in devices {
            clients.append(Client(username: device.id, textname: "device", roles: [RoleReference(rolename: device.role.rolename)]))
            roles.append(Role(rolename: device.role.rolename, acls: device.role.acls))
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(ConfigFile(clients: clients, groups: [], roles: roles, defaultACLAccess: DefaultAccess())))
    }

    /// One control command.
    public enum Command: Sendable {
        /// `createRole` with ACLs.
        case createRole(DynsecRole)
        /// `deleteRole`.
        case deleteRole(String)
        /// `createClient` holding one role, no password (certificate authentication).
        case createClient(username: String, role: String)
        /// `deleteClient`: also disconnects its live sessions.
        case deleteClient(String)
        /// `listClients`.
        case listClients
        /// `listRoles`.
        case listRoles
        /// `getRole`.
        case getRole(String)

        /// The command name.
        var name: String {
            switch self {
            case .createRole: return "createRole"
            case .deleteRole: return "deleteRole"
            case .createClient: return "createClient"
            case .deleteClient: return "deleteClient"
            case .listClients: return "listClients"
            case .listRoles: return "listRoles"
            case .getRole: return "getRole"
            }
        }

        /// The JSON object of the command.
        var json: [String: Any] {
            switch self {
            case .createRole(let role):
                return [
                    "command": name, "rolename": role.rolename,
                    "acls": role.acls.map { ["acltype": $0.acltype, "topic": $0.topic, "priority": $0.priority, "allow": $0.allow] },
                ]
            case .deleteRole(let rolename), .getRole(let rolename):
                return ["command": name, "rolename": rolename]
            case .createClient(let username, let role):
                return ["command": name, "username": username, "roles": [["rolename": role]]]
            case .deleteClient(let username):
                return ["command": name, "username": username]
            case .listClients, .listRoles:
                return ["command": name, "verbose": false, "count": -1, "offset": 0]
            }
        }
    }

    /// Encodes commands into one control message.
    static func encode(_ commands: [Command], correlation: String) throws -> [UInt8] {
        var objects = commands.map(\.json)
        for index in objects.indices { objects[index]["correlationData"] = "\(correlation)-\(index)" }
        return Array(try JSONSerialization.data(withJSONObject: ["commands": objects], options: [.sortedKeys]))
    }

    /// One response.
    public struct Response: Sendable {
        /// Command name.
        public var command: String
        /// Error text, nil on success.
        public var error: String?
        /// Usernames or role names for list commands.
        public var names: [String]
        /// ACLs for getRole.
        public var acls: [DynsecACL]
        /// Correlation data echoed by the plugin.
        public var correlation: String?
    }

    /// Decodes a response message.
    static func decode(_ payload: [UInt8]) throws -> [Response] {
        guard let object = try? JSONSerialization.jsonObject(with: Data(payload)) as? [String: Any],
            let responses = object["responses"] as? [[String: Any]]
        else { throw WardenError.badInput("dynamic-security response is not valid JSON") }
        return responses.map { item in
            let data = item["data"] as? [String: Any]
            var names: [String] = []
            if let clients = data?["clients"] as? [Any] {
                names = clients.compactMap { ($0 as? String) ?? (($0 as? [String: Any])?["username"] as? String) }
            } else if let roles = data?["roles"] as? [Any] {
                names = roles.compactMap { ($0 as? String) ?? (($0 as? [String: Any])?["rolename"] as? String) }
            }
            var acls: [DynsecACL] = []
            if let role = data?["role"] as? [String: Any], let list = role["acls"] as? [[String: Any]] {
                acls = list.compactMap { entry in
                    guard let type = entry["acltype"] as? String, let topic = entry["topic"] as? String else { return nil }
                    return DynsecACL(
                        acltype: type, topic: topic, priority: entry["priority"] as? Int ?? 0, allow: entry["allow"] as? Bool ?? false)
                }
            }
            return Response(
                command: item["command"] as? String ?? "", error: item["error"] as? String, names: names, acls: acls,
                correlation: item["correlationData"] as? String)
        }
    }
}
