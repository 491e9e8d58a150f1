import Foundation
import WardenAuthority
import WardenCore
import WardenPolicy
import WardenStore

/// Keeps the broker's dynamic-security clients and roles equal to the registry and the policies.
///
/// An active device gets a client and its compiled role only if the policies let it connect (`mqtt:connect` on
/// `client:<id>`, ``DynsecCompiler/mayConnect(deviceID:groups:documents:)``); otherwise it gets no client at all.
public struct BrokerSync: Sendable {
    /// The registry, the source of truth for which devices are active and their groups.
    public let registry: Registry
    /// Policy documents in force.
    public let policies: [PolicyDocument]
    /// The documents compiled once for the whole fleet.
    let evaluator: PolicyEvaluator

    /// Creates a sync for `authority`'s registry under `policies`.
    public init(authority: Authority, policies: [PolicyDocument]) {
        self.init(registry: authority.registry, policies: policies)
    }

    /// Creates a sync for `registry` under `policies` (no CA key needed).
    public init(registry: Registry, policies: [PolicyDocument]) {
        self.registry = registry
        self.policies = policies
        self.evaluator = PolicyEvaluator(documents: policies)
    }

    /// What a reconcile changed.
    public struct Report: Sendable, Equatable {
        /// Devices given a client and role.
        public var created: [String] = []
        /// Devices whose role drifted and was rewritten.
        public var repaired: [String] = []
        /// Clients removed because the registry does not have them active or the policies do not let them connect.
        public var removed: [String] = []
        /// Devices whose role was rewritten because the policies changed.
        public var rewritten: [String] = []
    }

    /// The broker role of a device under `evaluator`, or nil when the policies do not let it connect.
    static func role(for deviceID: String, groups: [String], evaluator: PolicyEvaluator) -> DynsecRole? {
        guard evaluator.allows(device: deviceID, groups: groups, action: "mqtt:connect", name: deviceID) else { return nil }
        return DynsecCompiler.role(for: deviceID, groups: groups, evaluator: evaluator)
    }

    /// The broker role of a device under ``policies``, or nil when they do not let it connect.
    public func role(for deviceID: String, groups: [String]) -> DynsecRole? {
        Self.role(for: deviceID, groups: groups, evaluator: evaluator)
    }

    /// Whether the policies let the device connect (so it should have a broker client).
    func mayConnect(_ deviceID: String, groups: [String]) -> Bool {
        evaluator.allows(device: deviceID, groups: groups, action: "mqtt:connect", name: deviceID)
    }

    /// Adds (or rewrites) the client and role of an active device; removes its client instead when the policies do
    /// not let it connect.
    /// - Returns: whether the device now has a client.
    @discardableResult
    public func add(_ deviceID: String, groups: [String], via dynsec: DynsecClient) async throws -> Bool {
        guard let role = role(for: deviceID, groups: groups) else {
            try await remove(deviceID, via: dynsec)
            return false
        }
        try await rewrite([(deviceID, role)], via: dynsec)
        return true
    }

    /// Replaces the client and role of each device in ONE control message, so the broker applies all of it between
    /// two network events: delete client and role (which disconnects live sessions: dynsec 2.0 kicks the clients
    /// of a changed role anyway, and a kick makes the device re-subscribe under the new rules), then create both.
    func rewrite(_ devices: [(id: String, role: DynsecRole)], via dynsec: DynsecClient) async throws {
        guard !devices.isEmpty else { return }
        var commands: [DynamicSecurity.Command] = []
        for device in devices {
            commands += [
                .deleteClient(device.id), .deleteRole(device.role.rolename), .createRole(device.role),
                .createClient(username: device.id, role: device.role.rolename),
            ]
        }
        let responses = try await dynsec.execute(commands)
        if let failed = responses.first(where: { ($0.command == "createRole" || $0.command == "createClient") && $0.error != nil }) {
            throw WardenError.storage("broker refused \(failed.command): \(failed.error ?? "")")
        }
    }

    /// Removes a device's client (which disconnects its live sessions) and its role.
    public func remove(_ deviceID: String, via dynsec: DynsecClient) async throws {
        let responses = try await dynsec.execute([.deleteClient(deviceID), .deleteRole(DynsecCompiler.roleName(for: deviceID))])
        if let failed = responses.first(where: { $0.error != nil && !($0.error ?? "").lowercased().contains("not found") }) {
            throw WardenError.storage("broker refused \(failed.command) for '\(deviceID)': \(failed.error ?? "")")
        }
    }

    /// Light reconcile for a running system: only clients missing from or extra in the broker are fixed (no role
    /// comparison), so it stays cheap enough to run after every registry change.
    public func reconcileMembership(via dynsec: DynsecClient) async throws -> Report {
        let active = try registry.devices(status: .active)
        let clients = Set(try await dynsec.execute([.listClients]).first?.names ?? [])
        var report = Report()
        let allowed = active.filter { mayConnect($0.id, groups: $0.groups) }
        let wanted = Set(allowed.map(\.id))
        for device in allowed where !clients.contains(device.id) {
            try await add(device.id, groups: device.groups, via: dynsec)
            report.created.append(device.id)
        }
        report.removed = try await removeExtra(clients: clients, wanted: wanted, via: dynsec)
        return report
    }

    /// Removes every broker client that is neither a control identity nor an active device.
    func removeExtra(clients: Set<String>, wanted: Set<String>, via dynsec: DynsecClient) async throws -> [String] {
        var removed: [String] = []
        for client in clients.sorted() where !DynamicSecurity.controlUsernames.contains(client) && !wanted.contains(client) {
            try await remove(client, via: dynsec)
            removed.append(client)
        }
        return removed
    }

    /// Repairs any drift between the registry and the broker.
    public func reconcile(via dynsec: DynsecClient) async throws -> Report {
        let active = try registry.devices(status: .active)
        let listed = try await dynsec.execute([.listClients, .listRoles])
        let clients = Set(listed.first { $0.command == "listClients" }?.names ?? [])
        let roles = Set(listed.first { $0.command == "listRoles" }?.names ?? [])
        var report = Report()
        var wanted = Set<String>()
        for device in active {
            guard let role = role(for: device.id, groups: device.groups) else { continue }
            wanted.insert(device.id)
            if !clients.contains(device.id) || !roles.contains(role.rolename) {
                try await add(device.id, groups: device.groups, via: dynsec)
                report.created.append(device.id)
                continue
            }
            let current = try await dynsec.execute([.getRole(role.rolename)]).first?.acls ?? []
            if Set(current) != Set(role.acls) {
                try await add(device.id, groups: device.groups, via: dynsec)
                report.repaired.append(device.id)
            }
        }
        report.removed = try await removeExtra(clients: clients, wanted: wanted, via: dynsec)
        for role in roles.sorted() where role.hasPrefix("device-") && !wanted.contains(String(role.dropFirst("device-".count))) {
            _ = try await dynsec.execute([.deleteRole(role)])
        }
        return report
    }

    /// After the policies changed from `previous` to ``policies``: for every active device whose compiled role (or
    /// right to connect) differs, removes the client of a device that may no longer connect, and rewrites the role of
    /// the others whose broker role is not already the new one (another process may have pushed it), with one control
    /// message to read the broker's roles and one to rewrite them.
    public func applyPolicyChange(previous: [PolicyDocument], via dynsec: DynsecClient) async throws -> Report {
        let before = PolicyEvaluator(documents: previous)
        var changed: [(id: String, role: DynsecRole)] = []
        var report = Report()
        for device in try registry.devices(status: .active) {
            let role = role(for: device.id, groups: device.groups)
            let old = Self.role(for: device.id, groups: device.groups, evaluator: before)
            guard role.map({ Set($0.acls) }) != old.map({ Set($0.acls) }) else { continue }
            if let role {
                changed.append((device.id, role))
            } else {
                try await remove(device.id, via: dynsec)
                report.removed.append(device.id)
            }
        }
        guard !changed.isEmpty else { return report }
        let current = try await dynsec.execute(changed.map { .getRole($0.role.rolename) })
        let stale = changed.enumerated().filter { index, device in
            index >= current.count || current[index].error != nil || Set(current[index].acls) != Set(device.role.acls)
        }.map { $0.element }
        try await rewrite(stale, via: dynsec)
        report.rewritten = stale.map { $0.id }
        return report
    }
}
