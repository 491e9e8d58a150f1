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
    public static let validity = ServiceIdentity.validity

    /// Issues a fresh `warden-ota` client certificate into the broker setup (key mode 0600, written atomically)
    /// and returns the MQTT configuration that connects with it to the setup's broker.
    /// - Throws: ``WardenError`` from issuance or storage.
    public static func issue(authority: Authority, layout: BrokerLayout, now: Date) throws -> MQTTConfiguration {
        try ServiceIdentity.issue(
            commonName: DynamicSecurity.otaUsername, certificate: layout.otaCertificate, key: layout.otaKey,
            authority: authority, layout: layout, now: now)
    }

    /// The MQTT configuration for the already issued OTA identity of `layout`.
    public static func configuration(layout: BrokerLayout) throws -> MQTTConfiguration {
        try ServiceIdentity.configuration(
            commonName: DynamicSecurity.otaUsername, certificate: layout.otaCertificate, key: layout.otaKey, layout: layout)
    }
}

extension BrokerLayout {
    /// The OTA assignment publisher's client certificate chain (CN `warden-assign`), issued by `warden serve` at start.
    public var assignmentCertificate: String { directory + "/assign.crt.pem" }
    /// Its private key (mode 0600).
    public var assignmentKey: String { directory + "/assign.key.pem" }
}

/// The MQTT identity of the OTA assignment publisher: `warden-assign`, whose dynsec role may only publish devices'
/// `d/<id>/down/ota/assignment`. Its own name, because Mosquitto takes the username as the client id (a shared
/// `warden-ota` would make the block service and the publisher take over each other's session).
public enum AssignmentIdentity {
    /// Issues a fresh `warden-assign` client certificate into the broker setup and returns its MQTT configuration.
    /// - Throws: ``WardenError`` from issuance or storage.
    public static func issue(authority: Authority, layout: BrokerLayout, now: Date) throws -> MQTTConfiguration {
        try ServiceIdentity.issue(
            commonName: DynamicSecurity.assignmentUsername, certificate: layout.assignmentCertificate, key: layout.assignmentKey,
            authority: authority, layout: layout, now: now)
    }
}
