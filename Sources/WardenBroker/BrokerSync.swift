import Foundation
import WardenAuthority
import WardenCore
import WardenPolicy

/// Keeps the broker's dynamic-security clients and roles equal to the registry and the policies.
public struct BrokerSync: Sendable {
    /// The authority whose registry is the source of truth.
    public let authority: Authority
    /// Policy documents in force.
    public let policies: [PolicyDocument]

    /// Creates a sync for `authority` under `policies`.
    public init(authority: Authority, policies: [PolicyDocument]) {
        self.authority = authority
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
    }

    /// Adds (or rewrites) the client and role of an active device.
    public func add(_ deviceID: String, groups: [String], via dynsec: DynsecClient) async throws {
        let role = DynsecCompiler.role(for: deviceID, groups: groups, documents: policies)
        _ = try await dynsec.execute([.deleteClient(deviceID), .deleteRole(role.rolename)])
        let responses = try await dynsec.execute([.createRole(role), .createClient(username: deviceID, role: role.rolename)])
        if let failed = responses.first(where: { $0.error != nil }) {
            throw WardenError.storage("broker refused \(failed.command) for '\(deviceID)': \(failed.error ?? "")")
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
        let active = try authority.registry.devices(status: .active)
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
        let active = try authority.registry.devices(status: .active)
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
}
