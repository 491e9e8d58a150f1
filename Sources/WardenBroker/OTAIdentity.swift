import Foundation
import WardenAuthority
import WardenCore
import WardenMQTT

extension BrokerLayout {
    /// The OTA block service's client certificate chain (CN `warden-ota`), issued by `warden serve` at start.
    public var otaCertificate: String { directory + "/ota.crt.pem" }
    /// Its private key (mode 0600).
    public var otaKey: String { directory + "/ota.key.pem" }
}

/// The MQTT identity of the OTA block service: a client certificate for the reserved name `warden-ota`, whose dynsec
/// role may only read devices' `up/ota/` requests and answer on their `down/ota/` trees.
public enum OTAIdentity {
    /// How long an issued OTA service certificate is valid; `serve` issues a fresh one at every start.
    public static let validity = WardenDuration(seconds: 90 * 86_400)

    /// Issues a fresh `warden-ota` client certificate into the broker setup (key mode 0600, written atomically)
    /// and returns the MQTT configuration that connects with it to the setup's broker.
    /// - Throws: ``WardenError`` from issuance or storage.
    public static func issue(authority: Authority, layout: BrokerLayout, now: Date) throws -> MQTTConfiguration {
        let credential = try authority.ca.issueServiceCertificate(
            commonName: DynamicSecurity.otaUsername, purposes: [.client], validity: validity, now: now)
        try SecureFile.writeAtomically(Array(credential.privateKeyPEM.utf8), to: layout.otaKey, mode: 0o600)
        try SecureFile.writeAtomically(Array(credential.chainPEM.utf8), to: layout.otaCertificate, mode: 0o644)
        return try configuration(layout: layout)
    }

    /// The MQTT configuration for the already issued OTA identity of `layout`.
    public static func configuration(layout: BrokerLayout) throws -> MQTTConfiguration {
        let metadata = try BrokerMetadata.load(layout)
        let host = metadata.bindAddress == "0.0.0.0" || metadata.bindAddress == "::" ? "127.0.0.1" : metadata.bindAddress
        return MQTTConfiguration(
            host: host, port: metadata.port, clientID: DynamicSecurity.otaUsername,
            tls: MQTTTLS(caFile: layout.caFile, certFile: layout.otaCertificate, keyFile: layout.otaKey),
            keepAlive: 30, cleanStart: true, connectTimeout: .seconds(5))
    }
}
