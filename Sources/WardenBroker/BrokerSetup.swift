import Foundation
import WardenAuthority
import WardenCore
import WardenPKI
import WardenPolicy

#if canImport(Glibc)
import Glibc
#endif

/// Writes a complete Mosquitto 2.0 setup for a Warden authority (`warden broker config`).
///
/// - TLS: a server certificate from the issuing CA, `cafile` with only the device-issuing chain, the current CRL,
///   `require_certificate`, `use_identity_as_username`, `use_username_as_clientid`, TLS 1.2 minimum.
/// - Access: the dynamic-security plugin with Warden's control identity (certificate auth), default deny for
///   send, receive and subscribe, and one role per active device compiled from the policy documents.
///
/// Everything is written into a staging directory and renamed into place, so a failure leaves nothing behind.
public enum BrokerSetup {
    /// Where Debian installs the dynamic-security plugin.
    public static let pluginCandidates = [
        "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so",
        "/usr/lib/aarch64-linux-gnu/mosquitto_dynamic_security.so",
        "/usr/lib/mosquitto_dynamic_security.so",
        "/usr/local/lib/mosquitto_dynamic_security.so",
    ]

    /// The dynamic-security plugin path, or an error telling the user to install Mosquitto.
    public static func pluginPath() throws -> String {
        guard let path = pluginCandidates.first(where: { FileManager.default.fileExists(atPath: $0) }) else {
            throw WardenError.notFound("the Mosquitto dynamic-security plugin is not installed (apt-get install mosquitto)")
        }
        return path
    }

    /// Writes the setup into `layout.directory`, which must not exist yet.
    /// - Parameters:
    ///   - names: extra DNS names or IP addresses for the server certificate (localhost, 127.0.0.1 and ::1 are always in).
    ///   - user: when running as root, the user Mosquitto drops to; files it must read or write are given to it.
    public static func write(
        layout: BrokerLayout, port: Int, bindAddress: String, names: [String], authority: Authority,
        policies: [PolicyDocument], user: String?, now: Date
    ) throws -> BrokerMetadata {
        guard (1...65_535).contains(port) else { throw WardenError.badInput("port \(port) is not between 1 and 65535") }
        guard SecureFile.mode(of: layout.directory) == nil else {
            throw WardenError.alreadyExists("'\(layout.directory)' already exists; choose a new directory for the broker setup")
        }
        let plugin = try pluginPath()
        let absolute = layout.directory.hasPrefix("/") ? layout.directory : FileManager.default.currentDirectoryPath + "/" + layout.directory
        let parent = (absolute as NSString).deletingLastPathComponent
        guard SecureFile.mode(of: parent) != nil else {
            throw WardenError.notFound("parent directory '\(parent)' of the broker setup does not exist")
        }
        let staging = BrokerLayout(directory: parent + "/.broker-config-\(UInt64.random(in: 0...UInt64.max))")
        try SecureFile.ensureDirectory(staging.directory, mode: 0o750)
        var done = false
        defer { if !done { try? FileManager.default.removeItem(atPath: staging.directory) } }

        let ipNames = names.filter { $0.contains(":") || $0.allSatisfy { $0.isNumber || $0 == "." } }
        let dnsNames = names.filter { !ipNames.contains($0) }
        let server = try authority.ca.issueServiceCertificate(
            commonName: "warden-broker", purposes: [.server], dnsNames: ["localhost"] + dnsNames,
            ipAddresses: ["127.0.0.1", "::1"] + ipNames, validity: WardenDuration(seconds: 365 * 86_400), now: now)
        let control = try authority.ca.issueServiceCertificate(
            commonName: DynamicSecurity.controlUsername, purposes: [.client],
            validity: WardenDuration(seconds: 365 * 86_400), now: now)
        let cliControl = try authority.ca.issueServiceCertificate(
            commonName: DynamicSecurity.cliControlUsername, purposes: [.client],
            validity: WardenDuration(seconds: 365 * 86_400), now: now)
        let recorder = try authority.ca.issueServiceCertificate(
            commonName: DynamicSecurity.recorderUsername, purposes: [.client],
            validity: WardenDuration(seconds: 365 * 86_400), now: now)
        let crl = try authority.issueCRL(now: now)

        // A device the policies do not let connect (mqtt:connect) gets no client, as BrokerSync does at run time.
        let devices = try authority.registry.devices(status: .active)
            .filter { DynsecCompiler.mayConnect(deviceID: $0.id, groups: $0.groups, documents: policies) }
            .map { device in (id: device.id, role: DynsecCompiler.role(for: device.id, groups: device.groups, documents: policies)) }
        try SecureFile.writeAtomically(Array(try authority.ca.bundlePEM.utf8), to: staging.caFile, mode: 0o644)
        try SecureFile.writeAtomically(Array(server.chainPEM.utf8), to: staging.serverCertificate, mode: 0o644)
        try SecureFile.writeAtomically(Array(server.privateKeyPEM.utf8), to: staging.serverKey, mode: 0o600)
        try SecureFile.writeAtomically(Array(control.chainPEM.utf8), to: staging.controlCertificate, mode: 0o644)
        try SecureFile.writeAtomically(Array(control.privateKeyPEM.utf8), to: staging.controlKey, mode: 0o600)
        try SecureFile.writeAtomically(Array(cliControl.chainPEM.utf8), to: staging.cliControlCertificate, mode: 0o644)
        try SecureFile.writeAtomically(Array(cliControl.privateKeyPEM.utf8), to: staging.cliControlKey, mode: 0o600)
        try SecureFile.writeAtomically(Array(recorder.chainPEM.utf8), to: staging.recorderCertificate, mode: 0o644)
        try SecureFile.writeAtomically(Array(recorder.privateKeyPEM.utf8), to: staging.recorderKey, mode: 0o600)
        try SecureFile.writeAtomically(Array(crl.pemEncoded.utf8), to: staging.crl, mode: 0o644)
        try SecureFile.writeAtomically(try DynamicSecurity.initialConfig(devices: devices), to: staging.dynamicSecurity, mode: 0o600)
        let metadata = BrokerMetadata(port: port, bindAddress: bindAddress, directory: absolute, user: user)
        let conf = configuration(layout: BrokerLayout(directory: absolute), metadata: metadata, plugin: plugin)
        try SecureFile.writeAtomically(Array(conf.utf8), to: staging.configuration, mode: 0o644)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try SecureFile.writeAtomically(Array(try encoder.encode(metadata)) + [0x0A], to: staging.metadata, mode: 0o644)
        if let user, geteuid() == 0 {
            try giveFiles(of: staging, to: user)
        }
        guard rename(staging.directory, absolute) == 0 else {
            throw WardenError.storage("cannot create '\(absolute)': \(String(cString: strerror(errno)))")
        }
        done = true
        try SecureFile.writeAtomically(
            Array((absolute + "\n").utf8), to: BrokerMetadata.registrationPath(home: authority.home.path), mode: 0o600)
        try authority.registry.audit(
            action: "broker.config", deviceID: nil,
            details: ["directory": absolute, "port": String(port), "server_serial": server.serial, "control_serial": control.serial],
            actor: authority.actor, now: now)
        return metadata
    }

    /// mosquitto.conf for the setup.
    static func configuration(layout: BrokerLayout, metadata: BrokerMetadata, plugin: String) -> String {
        var lines = [
            "# Written by `warden broker config`. Regenerate rather than edit: Warden manages the CRL and dynsec state.",
            "per_listener_settings false",
            "allow_anonymous false",
            "persistence false",
            "log_dest file \(layout.log)",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "connection_messages true",
            "# Control commands and kicks are small request/response exchanges: no Nagle delay on them.",
            "set_tcp_nodelay true",
            "",
            "listener \(metadata.port) \(metadata.bindAddress)",
            "protocol mqtt",
            "cafile \(layout.caFile)",
            "certfile \(layout.serverCertificate)",
            "keyfile \(layout.serverKey)",
            "crlfile \(layout.crl)",
            "tls_version tlsv1.2",
            "require_certificate true",
            "use_identity_as_username true",
            "use_username_as_clientid true",
            "",
            "plugin \(plugin)",
            "plugin_opt_config_file \(layout.dynamicSecurity)",
        ]
        if let user = metadata.user { lines.insert("user \(user)", at: 2) }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Gives the setup to the broker's user: it reads keys and the CRL, and the plugin rewrites its state file.
    static func giveFiles(of layout: BrokerLayout, to user: String) throws {
        guard let entry = getpwnam(user) else { throw WardenError.badInput("user '\(user)' does not exist") }
        let uid = entry.pointee.pw_uid
        let gid = entry.pointee.pw_gid
        for path in [layout.directory, layout.serverKey, layout.dynamicSecurity, layout.crl, layout.caFile,
                     layout.serverCertificate, layout.configuration, layout.metadata, layout.controlCertificate] {
            guard chown(path, uid, gid) == 0 else {
                throw WardenError.storage("cannot give '\(path)' to user '\(user)': \(String(cString: strerror(errno)))")
            }
        }
    }
}
