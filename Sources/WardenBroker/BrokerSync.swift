import Foundation
import WardenAuthority
import WardenCore
import WardenPolicy
import WardenStore

/// Keeps the broker's dynamic-security clients and roles equal to the registry and the policies.
public struct BrokerSync: Sendable {
    /// The registry, the source of truth for which devices are active and their groups.
    public let registry: Registry
    /// Policy documents in force.
    public let policies: [PolicyDocument]

    /// Creates a sync for `authority`'s registry under `policies`.
    public init(authority: Authority, policies: [PolicyDocument]) {
        self.init(registry: authority.registry, policies: policies)
    }

    /// Creates a sync for `registry` under `policies` (no CA key needed).
    public init(registry: Registry, policies: [PolicyDocument]) {
        self.registry = registry
        self.policies = policies
    }

    /// What a reconcile changed.
    public struct Report: Sendable, Equatable {
        /// Devices given a client and role.
        public var created: [String] = []
        /// Devices whose role drifted and was rewritten.
        public var repaired: [String] = []
        /// Clients removed because the registry does not have them active.
        public var removed: [String] = []
        /// Devices whose role was rewritten because the policies changed.
        public var rewritten: [String] = []
    }

    /// Adds (or rewrites) the client and role of an active device.
    public func add(_ deviceID: String, groups: [String], via dynsec: DynsecClient) async throws {
        try await rewrite([(deviceID, DynsecCompiler.role(for: deviceID, groups: groups, documents: policies))], via: dynsec)
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
        let wanted = Set(active.map(\.id))
        for device in active where !clients.contains(device.id) {
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
            wanted.insert(device.id)
            let role = DynsecCompiler.role(for: device.id, groups: device.groups, documents: policies)
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

    /// After the policies changed from `previous` to ``policies``: rewrites the role of every active device whose
    /// compiled role differs and whose broker role is not already the new one (another process may have pushed it),
    /// with one control message to read the broker's roles and one to rewrite them.
    public func applyPolicyChange(previous: [PolicyDocument], via dynsec: DynsecClient) async throws -> Report {
        var changed: [(id: String, role: DynsecRole)] = []
        for device in try registry.devices(status: .active) {
            let role = DynsecCompiler.role(for: device.id, groups: device.groups, documents: policies)
            let before = DynsecCompiler.role(for: device.id, groups: device.groups, documents: previous)
            if Set(role.acls) != Set(before.acls) { changed.append((device.id, role)) }
        }
        var report = Report()
        guard !changed.isEmpty else { return report }
        let current = try await dynsec.execute(changed.map { .getRole($0.role.rolename) })
        let stale = changed.enumerated().filter { index, device in
            index >= current.count || current[index].error != nil || Set(current[index].acls) != Set(device.role.acls)
        }.map(\.element)
        try await rewrite(stale, via: dynsec)
        report.rewritten = stale.map(\.id)
        return report
    }
}
