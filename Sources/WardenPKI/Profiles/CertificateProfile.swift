import Foundation
import WardenCore

/// A certificate profile: what Warden puts into a certificate of one kind, and what it accepts from a CSR.
///
/// Profiles live as JSON under `pki/profiles/` in the repository; `ca init` copies the shipped device profile
/// into `$WARDEN_HOME/profiles/device.json`, where an operator may edit it (for example to set a CRL
/// distribution point). Unknown fields are rejected so that a typo never silently weakens a profile.
public struct CertificateProfile: Codable, Sendable, Equatable {
    /// How the subjectAltName extension is filled.
    public enum SubjectAltName: String, Codable, Sendable {
        /// No SAN; the CN alone names the device (DESIGN.md: a SAN is optional per profile).
        case none
        /// A DNS name `<device id>.<dnsSuffix>`.
        case dns
    }

    /// Profile name, e.g. `device`.
    public var name: String
    /// Free text for humans.
    public var description: String?
    /// Key usage bits, by RFC 5280 name; devices: `digitalSignature`.
    public var keyUsage: [String]
    /// Extended key usages: `clientAuth`, `serverAuth`.
    public var extendedKeyUsage: [String]
    /// Validity when the operator does not ask for one, e.g. `90d`.
    public var defaultValidity: String
    /// Longest validity an operator may ask for.
    public var maximumValidity: String
    /// Accepted subject key types: `P-256`, `P-384`, `Ed25519`.
    public var allowedKeyTypes: [String]
    /// SAN policy.
    public var subjectAltName: SubjectAltName
    /// DNS suffix used when ``subjectAltName`` is `dns`.
    public var dnsSuffix: String?
    /// URL of the CRL, written as a CRL distribution point when set (RFC 5280 §4.2.1.13).
    public var crlDistributionPoint: String?

    /// The device profile compiled into Warden; identical to `pki/profiles/device.json` (a test keeps them equal).
    public static let builtInDevice = CertificateProfile(
        name: "device",
        description: "Device identity for mutual TLS to the broker and the Warden API. CN = device id.",
        keyUsage: ["digitalSignature"],
        extendedKeyUsage: ["clientAuth"],
        defaultValidity: "90d",
        maximumValidity: "825d",
        allowedKeyTypes: ["P-256", "P-384", "Ed25519"],
        subjectAltName: .none,
        dnsSuffix: nil,
        crlDistributionPoint: nil
    )

    /// Creates a profile; ``validate()`` checks it.
    public init(
        name: String, description: String?, keyUsage: [String], extendedKeyUsage: [String],
        defaultValidity: String, maximumValidity: String, allowedKeyTypes: [String],
        subjectAltName: SubjectAltName, dnsSuffix: String?, crlDistributionPoint: String?
    ) {
        self.name = name
        self.description = description
        self.keyUsage = keyUsage
        self.extendedKeyUsage = extendedKeyUsage
        self.defaultValidity = defaultValidity
        self.maximumValidity = maximumValidity
        self.allowedKeyTypes = allowedKeyTypes
        self.subjectAltName = subjectAltName
        self.dnsSuffix = dnsSuffix
        self.crlDistributionPoint = crlDistributionPoint
    }

    private enum CodingKeys: String, CodingKey, CaseIterable {
        case name, description, keyUsage, extendedKeyUsage, defaultValidity, maximumValidity
        case allowedKeyTypes, subjectAltName, dnsSuffix, crlDistributionPoint
    }

    /// Key usage names this profile may use.
    static let knownKeyUsages: Set<String> = ["digitalSignature", "keyAgreement"]
    /// Extended key usage names this profile may use.
    static let knownExtendedKeyUsages: Set<String> = ["clientAuth", "serverAuth"]
    /// Key types Warden can verify properly.
    static let knownKeyTypes: Set<String> = ["P-256", "P-384", "Ed25519"]

    /// Parses a profile from JSON, refusing unknown fields and invalid values.
    /// - Parameter source: how errors name the input, usually the file path.
    public static func parse(json bytes: [UInt8], source: String) throws -> CertificateProfile {
        if let object = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] {
            let known = Set(CodingKeys.allCases.map(\.rawValue))
            if let unknown = object.keys.sorted().first(where: { !known.contains($0) }) {
                throw WardenError.badInput("profile '\(source)' has unknown field '\(unknown)'")
            }
        }
        let profile: CertificateProfile
        do {
            profile = try JSONDecoder().decode(CertificateProfile.self, from: Data(bytes))
        } catch {
            throw WardenError.badInput("profile '\(source)' is not a valid profile document: \(error)")
        }
        try profile.validate(source: source)
        return profile
    }

    /// Checks every field; throws `.badInput` naming the field.
    public func validate(source: String) throws {
        for usage in keyUsage where !Self.knownKeyUsages.contains(usage) {
            throw WardenError.badInput("profile '\(source)': keyUsage '\(usage)' is not allowed for a device")
        }
        guard !keyUsage.isEmpty else { throw WardenError.badInput("profile '\(source)': keyUsage is empty") }
        for usage in extendedKeyUsage where !Self.knownExtendedKeyUsages.contains(usage) {
            throw WardenError.badInput("profile '\(source)': extendedKeyUsage '\(usage)' is unknown")
        }
        for type in allowedKeyTypes where !Self.knownKeyTypes.contains(type) {
            throw WardenError.badInput("profile '\(source)': key type '\(type)' is not supported")
        }
        let defaultSeconds = try WardenDuration(parsing: defaultValidity).seconds
        let maximumSeconds = try WardenDuration(parsing: maximumValidity).seconds
        guard defaultSeconds <= maximumSeconds else {
            throw WardenError.badInput("profile '\(source)': defaultValidity exceeds maximumValidity")
        }
        if subjectAltName == .dns {
            guard let suffix = dnsSuffix, !suffix.isEmpty,
                suffix.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == ".") })
            else {
                throw WardenError.badInput("profile '\(source)': subjectAltName 'dns' needs a valid dnsSuffix")
            }
        }
        if let url = crlDistributionPoint {
            guard let parsed = URL(string: url), parsed.scheme == "http" || parsed.scheme == "https",
                parsed.host != nil
            else {
                throw WardenError.badInput("profile '\(source)': crlDistributionPoint '\(url)' must be an http(s) URL")
            }
        }
    }

    /// The profile's JSON, pretty-printed with sorted keys (what `ca init` writes).
    public func jsonBytes() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(self)) + [0x0A]
    }
}
