import Foundation
import WardenAuthority
import WardenCore
import WardenMQTT

/// The MQTT identities of `warden serve`'s own services (OTA block service, TUF metadata publisher): a client
/// certificate for a reserved `warden-` name, whose dynsec role grants only that service's topics.
public enum ServiceIdentity {
    /// How long an issued service certificate is valid; `serve` issues a fresh one at every start.
    public static let validity = WardenDuration(seconds: 90 * 86_400)

    /// Issues a fresh client certificate for `commonName` into the broker setup (key mode 0600, both written
    /// atomically) and returns the MQTT configuration that connects with it to the setup's broker.
    /// - Throws: ``WardenError`` from issuance or storage.
    public static func issue(
        commonName: String, certificate: String, key: String, authority: Authority, layout: BrokerLayout, now: Date
    ) throws -> MQTTConfiguration {
        let credential = try authority.ca.issueServiceCertificate(
            commonName: commonName, purposes: [.client], validity: validity, now: now)
        try SecureFile.writeAtomically(Array(credential.privateKeyPEM.utf8), to: key, mode: 0o600)
        try SecureFile.writeAtomically(Array(credential.chainPEM.utf8), to: certificate, mode: 0o644)
        return try configuration(commonName: commonName, certificate: certificate, key: key, layout: layout)
    }

    /// The MQTT configuration for an already issued service identity of `layout`.
    public static func configuration(commonName: String, certificate: String, key: String, layout: BrokerLayout) throws -> MQTTConfiguration {
        let metadata = try BrokerMetadata.load(layout)
        let host = metadata.bindAddress == "0.0.0.0" || metadata.bindAddress == "::" ? "127.0.0.1" : metadata.bindAddress
        return MQTTConfiguration(
            host: host, port: metadata.port, clientID: commonName,
            tls: MQTTTLS(caFile: layout.caFile, certFile: certificate, keyFile: key),
            keepAlive: 30, cleanStart: true, connectTimeout: .seconds(5))
    }
}
